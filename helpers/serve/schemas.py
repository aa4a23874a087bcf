"""The API's request and response records (pydantic): what /docs shows, and what every request is
checked against before it is used (sizes, ids, names: helpers/serve/security.py)."""
from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from helpers.serve.security import check_adapter_id, check_name

MAX_TEXTS = 64
MAX_TEXT_CHARS = 10_000
MAX_ADAPTERS = 8
MAX_STUDY_CHARS = 20_000

AdapterId = Annotated[str, Field(max_length=300, examples=["default/finefoods/smollm2-135m"]),
                      AfterValidator(check_adapter_id)]
Name = Annotated[str, Field(max_length=64), AfterValidator(check_name)]
Text = Annotated[str, Field(min_length=1, max_length=MAX_TEXT_CHARS)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Adapter(BaseModel):
    """A registry record (helpers/adapters/registry.py) and whether its run folder is still there."""
    id: str
    study: str
    model: str
    base_model: str
    method: Literal["head", "generate"]
    dataset: str
    label_type: str
    labels: list[str]
    preset: str
    seed: int
    path: str
    metrics: dict[str, float | None]
    data_fingerprint: str | None
    git_commit: str | None
    git_dirty: bool | None
    created: str
    present: bool


class PredictRequest(Strict):
    adapters: list[AdapterId] = Field(min_length=1, max_length=MAX_ADAPTERS)
    texts: list[Text] = Field(min_length=1, max_length=MAX_TEXTS)


class Generated(BaseModel):
    """A generative adapter's answer as written, and what the parser read from it."""
    answer: str
    decision: str | None
    rationale: str | None
    abstain: bool | None
    read_as: str


class Prediction(BaseModel):
    """One text's decision by one adapter (docs/adapters.md, "Batch prediction"): a single-label
    head's label with its probabilities, conformal set and abstention; a multi-label head's labels,
    scores and label set; a regression head's prediction and interval per target
    (helpers/labels/rules.py). Each fills its own fields; the others stay null."""
    label: str | None = None
    confidence: float | None = None
    probabilities: dict[str, float] | None = None
    conformal_set: list[str] | None = None
    abstain: bool | None = None
    confident: bool | None = None
    generated: Generated | None = None
    labels: list[str] | None = None  # multi-label: those at or above their thresholds
    scores: dict[str, float] | None = None
    label_set: list[str] | None = None
    prediction: dict[str, float] | None = None  # regression, in the targets' units
    interval: dict[str, list[float]] | None = None


class AdapterPredictions(BaseModel):
    adapter: str
    method: str
    labels: list[str]
    predictions: list[Prediction]  # in the order of the request's texts


class PredictResponse(BaseModel):
    texts: list[str]
    results: list[AdapterPredictions]  # in the order of the request's adapters


class GenerateRequest(PredictRequest):
    """As /predict, for adapters of `method: generate` only."""


LabelName = Annotated[str, Field(min_length=1, max_length=200)]


def _one_equals_sign(label_map: dict[str, str]) -> dict[str, str]:
    """A job's label map travels as `--label-map SOURCE=TARGET` arguments: no '=' in a source label."""
    clashing = [label for label in label_map if "=" in label]
    if clashing:
        raise ValueError(f"label_map: label {clashing[0]!r} holds '=', which the job's command line "
                         f"(--label-map SOURCE=TARGET) cannot carry")
    return label_map


JobLabelMap = Annotated[dict[LabelName, LabelName], Field(max_length=256), AfterValidator(_one_equals_sign)]


class WeightedAdapterIn(Strict):
    id: AdapterId
    weight: float = Field(allow_inf_nan=False)


class MergeRequest(Strict):
    adapters: list[WeightedAdapterIn] = Field(min_length=2, max_length=MAX_ADAPTERS)
    method: Literal["linear", "ties", "dare_ties", "cat"] = "linear"
    out_id: Name
    density: float | None = Field(default=None, gt=0, le=1)
    dataset: Name | None = None
    # a parent's label = the evaluated parent's (either way round), for heads with other label names
    label_map: JobLabelMap = Field(default_factory=dict)
    force: bool = False


class TrainForm(Strict):
    """A study from the form: models x datasets under one preset."""
    name: Name
    models: list[Name] = Field(min_length=1, max_length=16)
    datasets: list[Name] = Field(min_length=1, max_length=16)
    preset: Name = "tiny"
    seeds: list[int] = Field(default_factory=lambda: [1337], min_length=1, max_length=8)


class TrainRequest(Strict):
    """Either a study YAML (as in params/studies/) or the form; `force` reruns finished runs,
    `report: false` skips the study's HTML and PDF report."""
    study_yaml: str | None = Field(default=None, max_length=MAX_STUDY_CHARS)
    form: TrainForm | None = None
    force: bool = False
    report: bool = True

    @model_validator(mode="after")
    def one_source(self) -> TrainRequest:
        if (self.study_yaml is None) == (self.form is None):
            raise ValueError("give either study_yaml (a study file's text) or form (name, models, datasets, preset)")
        return self


JobState = Literal["queued", "running", "succeeded", "failed", "cancelled", "interrupted"]


class Job(BaseModel):
    id: int
    kind: Literal["train", "merge", "evaluate"]
    title: str
    state: JobState
    created: str
    started: str | None
    finished: str | None
    returncode: int | None
    error: str | None
    stage: str | None = None  # what runs now, from the job's log
    progress: float | None = None  # 0..1 of the job's stages, where the log says
    adapters: list[str] = Field(default_factory=list)  # what it registered (a finished job)
    log_tail: list[str] | None = None  # the last lines of its log (GET /jobs/{id} only)
    evaluation: str | None = None  # a succeeded evaluate job: where its record is (GET /jobs/{id}/evaluation)


class Options(BaseModel):
    """What the Train and Merge forms offer."""
    models: dict[str, str]  # id: method
    datasets: dict[str, list[str]]  # id: labels
    presets: list[str]
    studies: list[str]
    max_texts: int = MAX_TEXTS
    max_text_chars: int = MAX_TEXT_CHARS
    auth: bool  # whether API calls need the token


class Report(BaseModel):
    study: str
    modified: str
    url: str


# /evaluate answers in the request; more texts, up to the whole split, go through POST /evaluations
# as a background job.
MAX_EVALUATE_EXAMPLES = 2_000


class EvaluateRequest(Strict):
    """A registered single-label head scored on a registered dataset's split (docs/adapters.md,
    "Evaluate an adapter on another dataset"). `label_map`: dataset label -> adapter label (default:
    the same name); `preset` null: the adapter run's own; at most `max_examples` texts (a stratified
    sample of the split where it is larger)."""
    adapter: AdapterId
    dataset: Name
    preset: Name | None = None
    split: Literal["test", "validation"] = "test"
    label_map: dict[LabelName, LabelName] = Field(default_factory=dict, max_length=256)
    max_examples: int = Field(default=MAX_EVALUATE_EXAMPLES, ge=1)
    seed: int = 1337

    @model_validator(mode="after")
    def _in_the_request(self) -> EvaluateRequest:
        if self.max_examples > MAX_EVALUATE_EXAMPLES:
            raise ValueError(f"max_examples {self.max_examples}: /evaluate answers at most {MAX_EVALUATE_EXAMPLES:,} "
                             f"texts in the request; POST /evaluations scores more (or the whole split) as a "
                             f"background job")
        return self


class EvaluationJobRequest(Strict):
    """/evaluate's request as a background job (`senticompare evaluate` in a subprocess):
    `max_examples` null scores the whole split. The job's record: GET /jobs/{id}/evaluation."""
    adapter: AdapterId
    dataset: Name
    preset: Name | None = None
    split: Literal["test", "validation"] = "test"
    label_map: JobLabelMap = Field(default_factory=dict)  # as /evaluate's; a label holding '=': use /evaluate
    max_examples: int | None = Field(default=None, ge=1)
    seed: int = 1337


class MajorityBaseline(BaseModel):
    label: str  # the adapter label the train split's most frequent class maps to
    accuracy: float
    f1: float


class EvaluateResponse(BaseModel):
    """What `senticompare evaluate` writes to experiments/evaluations/ (`output`)."""
    adapter: str
    adapter_dataset: str
    adapter_labels: list[str]
    dataset: str
    dataset_labels: list[str]
    dataset_fingerprint: str
    split: str
    preset: str
    seed: int
    label_map: dict[str, str]
    examples: int
    split_examples: int
    accuracy: float
    f1: float
    precision: float
    recall: float
    accuracy_ci95: list[float]
    f1_ci95: list[float]
    baseline_majority: MajorityBaseline
    confusion_labels: list[str]
    confusion_matrix: list[list[int]]  # rows: true, columns: predicted, in confusion_labels' order
    conformal_alpha: float
    conformal_coverage: float
    conformal_set_size: float
    abstain_share: float
    adapter_test_accuracy: float | None
    note: str | None
    created: str
    output: str
