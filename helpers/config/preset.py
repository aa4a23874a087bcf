"""Presets (params/presets/*.yaml): data caps, max length, and the train, speed and evaluation
settings. A preset sets only what differs from the defaults below; every value is checked when
the record is built, whether from a preset, a study's `overrides:` or a model's own recipe."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from helpers.config.base import ConfigError, as_mapping, build, check, one_of, override, read_yaml
from helpers.core.paths import PARAMS_DIR

QUANTIZATIONS = {"none", "4bit", "8bit"}  # 4bit: NF4 (QLoRA), 8bit: LLM.int8 (bitsandbytes)
# lora: adapters on the registry's target modules, the head in full (QLoRA: lora over a 4-bit base,
# quantization: 4bit); full: every weight trains (helpers/train/models.py `adapt`).
METHODS = {"lora", "full"}
# torch.compile over the model's forward and backward (issue 22): none (eager), default (inductor's
# fused kernels), reduce-overhead (those kernels replayed as CUDA graphs, one per padded batch shape:
# for small models whose steps are bound by the host's kernel launches).
COMPILE_MODES = {"none", "default", "reduce-overhead"}
STRATEGIES = {"no", "steps", "epoch"}  # when to evaluate on validation / save a checkpoint during training
BEST_METRICS = {"f1", "accuracy", "loss"}  # on validation; f1 is macro F1
TRACKERS = {"tensorboard", "mlflow"}
TRUNCATION_SIDES = {"left", "right"}
# Who speaks, in the model's input (helpers/data/context.py): none | token (a special token per
# context value, trained) | description (a short prefix in words) | instruction (decoders: a line
# before the text). Any mode but none needs the dataset's context_column.
CONTEXT_MODES = {"none", "token", "description", "instruction"}
# How training batches are drawn (helpers/train/sampler.py): random (the Trainer's random batches) or
# length-grouped (the Trainer's group_by_length: batches of similar lengths, least padding, but not
# random draws: Gemma 3 270M 2.45 points behind random batches on one epoch of 288 Fine Foods reviews).
SAMPLINGS = {"random", "length-grouped"}
# How a random batch is cut into its micro-batches (helpers/train/sampler.py): even (micro_batch_size
# each) or least-padding (as many micro-batches, of the sizes that compute the fewest tokens; under
# DDP those that keep the ranks waiting least). Runs recorded before the setting existed read as even
# (helpers/pipeline/recorded.py).
MICRO_BATCH_SPLITS = {"even", "least-padding"}
DISTRIBUTED = {"none", "ddp"}  # ddp: 02_train under torchrun, one process per GPU or CPU share
# temperature: confidences only, the argmax decision stays the model's; bias_temperature: per-class
# biases too, so the decision threshold is fitted on validation as well (helpers/evaluate/calibration.py).
RECALIBRATIONS = ("temperature", "bias_temperature")
LABEL_THRESHOLDS = ("global", "per_label")
DECODINGS = {"free", "json_schema"}  # how a generator's answer is decoded (GenerationConfig)
MIN_MAX_LENGTH = 8


def _positive(value: Any) -> bool:
    return value > 0


def _at_least(low: int):
    return lambda value: value >= low


def _fraction(value: float) -> bool:
    return 0 <= value < 1


STEPS = "a positive integer or a fraction in (0, 1) of the training's steps"
STEPS_RULE = f"null or {STEPS}"


def _steps(value: float | None) -> bool:
    return value is None or 0 < value < 1 or (value >= 1 and value == int(value))


@dataclass(frozen=True)
class TrainConfig:
    epochs: float = 1
    learning_rate: float = 2e-4
    batch_size: int = 16
    eval_batch_size: int = 32
    weight_decay: float = 0.0
    warmup_ratio: float = 0.0
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    method: str = "lora"  # lora | full (every weight)
    quantization: str = "none"  # none | 4bit (QLoRA: NF4 with double quantization)
    max_steps: int = -1  # -1: as many as the epochs take
    # LoRA on the top n transformer layers only (0: all). The backward pass stops at the lowest
    # adapted layer, so training costs 2N + 2N*n/L FLOPs per token instead of 4N.
    lora_layers: int = 0
    # Modules LoRA adapts, over the registry's `lora_targets` (empty: the model's own); ["all-linear"]
    # is peft's every linear layer but the head. Names are the model's (query/key/value for BERT,
    # q_proj/.../down_proj for Llama and Gemma), so a recipe naming them fits one family.
    lora_targets: list[str] = field(default_factory=list)
    gradient_accumulation_steps: int = 1
    sampling: str = "random"  # one of SAMPLINGS
    # 0: each batch in one forward pass. n: each batch (of batch_size / processes) sorted by length and
    # run as micro-batches of n whose gradients add up to the batch's, so a short text is not padded to
    # the batch's longest: the same steps with less padding, for a CPU on long texts (on a GPU, where
    # small models are bound by kernel launches, n micro-batches cost n times the launches).
    micro_batch_size: int = 0
    micro_batch_split: str = "even"  # one of MICRO_BATCH_SPLITS
    gradient_checkpointing: bool = False  # recompute activations in the backward pass: less memory, slower steps
    max_grad_norm: float = 1.0  # gradient clipping (the Trainer's default)
    compile: str = "none"  # one of COMPILE_MODES; the first step of each batch shape pays the compilation
    # Training control: validation during training, the best checkpoint, early stopping. A run
    # whose training was killed resumes from its last checkpoint in <run>/checkpoints/.
    eval_strategy: str = "no"  # no | steps | epoch: validation loss, accuracy and macro F1 while training
    # With eval_strategy steps: every n optimizer steps, or a fraction in (0, 1) of the training's
    # steps (0.2: five evaluations whatever the data set's size, as transformers reads it).
    eval_steps: float | None = None
    save_strategy: str = "no"  # no | steps | epoch: checkpoints in the run folder, resumed after a kill
    save_steps: float | None = None  # with save_strategy steps; a positive integer or a fraction as eval_steps
    save_total_limit: int | None = 2  # checkpoints kept (the best one is always kept)
    load_best_model_at_end: bool = False  # the adapter saved is the best validation checkpoint's
    metric_for_best_model: str = "f1"  # f1 (macro) | accuracy | loss, on validation
    early_stopping_patience: int = 0  # evaluations without improvement before stopping (0: never stop early)
    report_to: list[str] = field(default_factory=list)  # tensorboard | mlflow (a study's `tracking:`)
    # Training on several processes (helpers/train/distributed.py): none, or ddp under torchrun with
    # `processes` ranks (null: one per visible GPU); batch_size stays the global batch.
    distributed: str = "none"
    processes: int | None = None

    def __post_init__(self) -> None:
        check(self, [
            ("epochs", "a positive number", _positive),
            ("learning_rate", "a positive number", _positive),
            ("batch_size", "a positive integer", _positive),
            ("eval_batch_size", "a positive integer", _positive),
            ("weight_decay", "a non-negative number", _at_least(0)),
            ("warmup_ratio", "in [0, 1)", _fraction),
            ("lora_r", "a positive integer", _positive),
            ("lora_alpha", "a positive number", _positive),
            ("lora_dropout", "in [0, 1)", _fraction),
            ("method", *one_of(METHODS)),
            ("quantization", *one_of(QUANTIZATIONS)),
            ("max_steps", "-1 (as the epochs take) or a positive integer", lambda v: v == -1 or v > 0),
            ("lora_layers", "0 (every layer) or a positive integer", _at_least(0)),
            ("lora_targets", "a list of module names (empty: the registry's), or [all-linear]",
             lambda v: all(isinstance(n, str) and n for n in v) and ("all-linear" not in v or v == ["all-linear"])),
            ("gradient_accumulation_steps", "a positive integer", _positive),
            ("sampling", *one_of(SAMPLINGS)),
            ("micro_batch_size", "0 (whole batches) or a positive integer", _at_least(0)),
            ("micro_batch_split", *one_of(MICRO_BATCH_SPLITS)),
            ("max_grad_norm", "a positive number", _positive),
            ("compile", *one_of(COMPILE_MODES)),
            ("eval_strategy", *one_of(STRATEGIES)),
            ("eval_steps", STEPS_RULE, _steps),
            ("save_strategy", *one_of(STRATEGIES)),
            ("save_steps", STEPS_RULE, _steps),
            ("save_total_limit", "null (keep all) or a positive integer", lambda v: v is None or v > 0),
            ("metric_for_best_model", *one_of(BEST_METRICS)),
            ("early_stopping_patience", "0 (off) or a positive integer", _at_least(0)),
            ("report_to", f"a list of trackers from {sorted(TRACKERS)}", lambda v: set(v) <= TRACKERS),
            ("distributed", *one_of(DISTRIBUTED)),
            ("processes", "null (one per visible GPU) or a positive integer", lambda v: v is None or v > 0),
        ])
        if self.processes and self.distributed == "none":
            raise ConfigError(f"processes {self.processes} needs distributed: ddp (or remove processes)")
        if self.processes and self.batch_size % self.processes:
            raise ConfigError(f"batch_size {self.batch_size} is the global batch of {self.processes} processes: make "
                              f"it a multiple of processes (each takes batch_size / processes)")
        if self.micro_batch_size and (self.batch_size // (self.processes or 1)) % self.micro_batch_size:
            raise ConfigError(f"micro_batch_size {self.micro_batch_size} must divide each process's batch "
                              f"(batch_size {self.batch_size} / processes {self.processes or 1}); "
                              f"pick a divisor, or 0 for whole batches")
        if self.micro_batch_split == "least-padding":
            self._check_least_padding()
        if self.method == "full" and self.quantization != "none":
            raise ConfigError(f"method full trains every weight, and {self.quantization} weights cannot be trained; "
                              f"set quantization: none, or method: lora (QLoRA is lora over a 4-bit base)")
        for strategy, steps in (("eval_strategy", "eval_steps"), ("save_strategy", "save_steps")):
            if getattr(self, strategy) == "steps" and not getattr(self, steps):
                raise ConfigError(f"{strategy} 'steps' needs {steps} ({STEPS})")
        if self.load_best_model_at_end and (self.eval_strategy == "no" or self.save_strategy != self.eval_strategy):
            raise ConfigError("load_best_model_at_end needs eval_strategy and save_strategy set alike (steps or "
                              "epoch): the best model is one of the saved checkpoints")
        if (self.load_best_model_at_end and self.save_strategy == "steps"
                and self.save_steps % self.eval_steps):
            raise ConfigError(f"load_best_model_at_end needs save_steps ({self.save_steps}) to be a multiple of "
                              f"eval_steps ({self.eval_steps})")
        if self.early_stopping_patience and not self.load_best_model_at_end:
            raise ConfigError("early_stopping_patience needs load_best_model_at_end: true (and evaluation during "
                              "training) to know which step was best")

    def _check_least_padding(self) -> None:
        """least-padding cuts the random batch into the micro-batches micro_batch_size counts."""
        if self.sampling != "random":
            raise ConfigError(f"micro_batch_split least-padding cuts random batches; with sampling {self.sampling} "
                              f"set micro_batch_split: even")
        if not 0 < self.micro_batch_size < self.batch_size:
            raise ConfigError(f"micro_batch_split least-padding needs micro_batch_size below batch_size "
                              f"({self.batch_size}), to count the micro-batches a batch is cut into (2 for 4 "
                              f"micro-batches of a batch of 8); got {self.micro_batch_size}")


@dataclass(frozen=True)
class SpeedConfig:
    warmup: int = 3
    repeats: int = 20
    batch_size: int = 32
    max_examples: int = 128

    def __post_init__(self) -> None:
        check(self, [
            ("warmup", "a non-negative integer", _at_least(0)),
            ("repeats", "a positive integer", _positive),
            ("batch_size", "a positive integer", _positive),
            ("max_examples", "a positive integer", _positive),
        ])


@dataclass(frozen=True)
class GenerationConfig:
    """Models that answer by generation (registry `method: generate`, helpers/generate/): greedy
    decoding, the KV cache on. Measured with SmolLM2-135M fine-tuned on Tweet Sentiment Extraction,
    on this 2-core CPU: its JSON answers average 28 tokens; 32 test tweets took 30.8 / 24.2 / 21.2 s
    in batches of 8 / 16 / 32. The base model rarely stops on its own (it writes to max_new_tokens),
    so it answers only the first `base_examples` test texts."""
    max_new_tokens: int = 64
    batch_size: int = 16
    compare_base: bool = True  # the base model answers test prompts too (base vs fine-tuned)
    base_examples: int | None = 64  # how many (null: every test text)
    # free: the model writes what it likes and the parser reads it; json_schema: every token is
    # constrained to the answer's JSON schema (xgrammar). Measured on 48 test tweets (docs/generation.md):
    # the fine-tuned SmolLM2 writes the same answers either way (+6 % time); its base model goes from
    # 0.04 to 0.35 decision accuracy.
    decoding: str = "free"

    def __post_init__(self) -> None:
        check(self, [
            ("decoding", *one_of(DECODINGS)),
            ("max_new_tokens", "a positive integer", _positive),
            ("batch_size", "a positive integer", _positive),
            ("base_examples", "null (every test text) or a positive integer", lambda v: v is None or v > 0),
        ])


def _square(matrix: Any) -> bool:
    return matrix is None or (len(matrix) >= 2 and all(len(row) == len(matrix) and all(v >= 0 for v in row)
                                                       for row in matrix))


@dataclass(frozen=True)
class EvaluationConfig:
    """Calibration, selective prediction, conformal sets, costs (helpers/evaluate/uncertainty.py).
    The cost matrix's size is checked against the dataset's classes by 03_evaluate."""
    ece_bins: int = 15
    conformal_alpha: float = 0.1  # prediction sets may miss the true label on at most this share of examples
    target_accuracy: float = 0.9  # selective prediction answers only above the confidence reaching this on validation
    cost_matrix: list[list[float]] | None = None  # true class x predicted class; None: 0 when right, 1 when wrong
    abstain_cost: float = 0.3  # handing an example to a person costs 0.3 of a wrong answer
    min_group_size: int = 10  # smaller groups are listed but not judged (worst group, gap)
    baseline_shots: list[int] = field(default_factory=lambda: [0])  # causal LMs before fine-tuning: k of k-shot
    recalibration: str = "bias_temperature"  # fitted on validation; one of RECALIBRATIONS
    # Multi-label decisions (helpers/labels/): one threshold for every label, or one per label, fitted
    # on validation. global won 7 of 8 headline numbers on GoEmotions (docs/labels.md#thresholds).
    label_thresholds: str = "global"

    def __post_init__(self) -> None:
        check(self, [
            ("ece_bins", "a positive integer", _positive),
            ("conformal_alpha", "in (0, 1)", lambda v: 0 < v < 1),
            ("target_accuracy", "in (0, 1]", lambda v: 0 < v <= 1),
            ("abstain_cost", "a non-negative number", _at_least(0)),
            ("min_group_size", "a positive integer", _positive),
            ("baseline_shots", "a list of non-negative integers (k of each k-shot baseline)",
             lambda v: all(k >= 0 for k in v)),
            ("recalibration", *one_of(RECALIBRATIONS)),
            ("label_thresholds", *one_of(LABEL_THRESHOLDS)),
            ("cost_matrix", "null or a square list of rows of non-negative numbers (true class x predicted class)",
             _square),
        ])


@dataclass(frozen=True)
class Preset:
    name: str
    max_train: int | None
    max_validation: int | None
    max_test: int | None
    max_length: int
    balance: bool
    train: TrainConfig = field(default_factory=TrainConfig)
    speed: SpeedConfig = field(default_factory=SpeedConfig)
    truncation_side: str = "right"  # left: texts longer than max_length keep their end
    context_mode: str = "none"  # none | token | description | instruction (CONTEXT_MODES)
    max_calibration: int | None = None  # held out for conformal prediction; None: as max_validation
    description: str = ""
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    generation: GenerationConfig = field(default_factory=GenerationConfig)

    def __post_init__(self) -> None:
        cap = "null (every row) or a positive integer"
        check(self, [
            *((name, cap, lambda v: v is None or v > 0)
              for name in ("max_train", "max_validation", "max_test", "max_calibration")),
            ("max_length", f"at least {MIN_MAX_LENGTH} tokens", _at_least(MIN_MAX_LENGTH)),
            ("truncation_side", *one_of(TRUNCATION_SIDES)),
            ("context_mode", *one_of(CONTEXT_MODES)),
        ])


def check_context_mode(mode: str, dataset: Any, model: Any) -> None:
    """Where a context mode meets its dataset and model (a DatasetSpec and a ModelSpec): any mode but
    none needs the dataset's context_column and a classification head (method head); instruction, a decoder."""
    if mode == "none":
        return
    if getattr(dataset, "context_column", None) is None:
        raise ConfigError(f"context_mode {mode!r} puts the dataset's context in the model's input, and dataset "
                          f"{dataset.id!r} has no context_column: name one in params/datasets.yaml (e.g. "
                          f"context_column: Reviewer_Location), or set context_mode: none for this dataset")
    if mode == "instruction" and model.family != "decoder":
        raise ConfigError(f"context_mode 'instruction' is for decoders (causal LMs), and {model.id!r} is an "
                          f"{model.family}: use description or token for it")
    if model.method != "head":
        raise ConfigError(f"context_mode {mode!r} is built into the inputs of classification heads; {model.id!r} "
                          f"answers by generation (method {model.method}), whose prompts do not carry the context "
                          f"yet: set context_mode: none for it")


def preset_path(name_or_path: str) -> Path:
    """A preset's file: a path to a YAML file, or the name of one in params/presets/."""
    path = Path(name_or_path)
    if path.suffix in {".yaml", ".yml"}:
        return path
    path = PARAMS_DIR / "presets" / f"{name_or_path}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in (PARAMS_DIR / "presets").glob("*.yaml"))
        raise ConfigError(f"unknown preset {name_or_path!r}; known presets: {known}")
    return path


def load_preset(name_or_path: str) -> Preset:
    path = preset_path(name_or_path)
    return build(Preset, as_mapping(read_yaml(path), str(path)), str(path), name=path.stem)


def apply_overrides(preset: Preset, overrides: dict[str, Any], where: str = "study overrides") -> Preset:
    """A study may override preset values, e.g. {"max_train": 64, "train": {"max_steps": 4}};
    the result is checked like a preset."""
    return override(preset, overrides, where)
