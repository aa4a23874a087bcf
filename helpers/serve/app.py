"""The API: the adapter registry, prediction and generation with registered adapters, merges and
study runs as background jobs, the studies' reports; the web UI beside it (helpers/serve/ui.py).
`create_app` builds it, `serve` runs it under uvicorn (`senticompare serve`, `make serve`).
Endpoints and their records: docs/serve.md and /docs (OpenAPI)."""
from __future__ import annotations

import dataclasses
import tempfile
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Any

import yaml
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, JSONResponse

from helpers import config
from helpers.adapters import registry
from helpers.adapters.evaluate import check_single_label, evaluate_adapter, output_file
from helpers.adapters.merge import WeightedAdapter, plan_merge
from helpers.config import ConfigError
from helpers.core.io import read_json
from helpers.core.paths import PARAMS_DIR, reports_dir
from helpers.data.records import DataError
from helpers.serve import schemas, ui
from helpers.serve.jobs import JobRecord, JobRunner, JobStore, cli_command, read_log, serve_dir
from helpers.serve.predictors import DEFAULT_SIZE, PredictorCache
from helpers.serve.security import (DEFAULT_MAX_BODY, REPORT_POLICY, GuardMiddleware, SecurityPolicy, check_name,
                                    policy_for)
from helpers.train.models import ModelError

PATH_KEYS = ("data_dir",)  # a study's keys that name a folder to read
PATH_LISTS = ("benchmarks",)


@dataclass(frozen=True)
class ServeSettings:
    host: str = "127.0.0.1"
    port: int = 8000
    token: str | None = None
    max_body_bytes: int = DEFAULT_MAX_BODY
    max_jobs: int = 1  # jobs (trainings, merges) at a time; the rest wait in the queue
    loaded_adapters: int = DEFAULT_SIZE  # adapters kept loaded for /predict and /generate
    int8: str | None = None  # adapters loaded with their body in this int8 mode (helpers/evaluate/quantize.py)

    def policy(self) -> SecurityPolicy:
        return policy_for(self.host, self.port, self.token, self.max_body_bytes)


def _job(record: JobRecord, with_log: bool = False) -> schemas.Job:
    view = read_log(record.log_file) if record.state == "running" or with_log else None
    return schemas.Job(id=record.id, kind=record.kind, title=record.title, state=record.state, created=record.created,
                       started=record.started, finished=record.finished, returncode=record.returncode,
                       error=record.error, adapters=record.adapters,
                       stage=view.stage if view and record.state == "running" else None,
                       progress=view.progress if view and record.state == "running" else None,
                       log_tail=view.tail if with_log else None,
                       evaluation=(f"/jobs/{record.id}/evaluation"
                                   if record.kind == "evaluate" and record.state == "succeeded" else None))


def _relative_inside(value: Any, key: str) -> None:
    """A path a request gives: relative, without `..` (it is read under the project root)."""
    if value is None:
        return
    path = PurePosixPath(str(value))
    if path.is_absolute() or ".." in path.parts or "\\" in str(value) or str(value).startswith("~"):
        raise ConfigError(f"study {key}: {str(value)[:120]!r} is absolute or leaves the project (..); a request may "
                          f"name only a folder inside the project, or leave {key} out (the server's "
                          f"SENTICOMPARE_DATA_DIR applies)")


def check_study_text(text: str) -> config.Study:
    """A study YAML from a request, checked as `senticompare run` checks it, and for paths."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"study_yaml is not YAML ({exc}); give a study file's text, as in params/studies/") from None
    if not isinstance(data, dict):
        raise ConfigError("study_yaml holds no mapping; give a study file's text (name, models, datasets, preset, "
                          "seeds), as in params/studies/")
    for key in PATH_KEYS:
        _relative_inside(data.get(key), key)
    for key in PATH_LISTS:
        for value in data.get(key) or []:
            _relative_inside(value, key)
    folder = serve_dir() / "checks"
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", dir=folder, delete=False, encoding="utf-8") as f:
        f.write(text)
    try:
        return config.load_study(f.name)
    except ConfigError as exc:
        raise ConfigError(str(exc).replace(f.name, "study_yaml")) from None
    finally:
        Path(f.name).unlink(missing_ok=True)


def _predictions(predictors: PredictorCache, request: schemas.PredictRequest,
                 generating_only: bool = False) -> schemas.PredictResponse:
    records = [registry.finished_run(adapter) for adapter in request.adapters]
    if generating_only:
        heads = [r.id for r in records if r.method != "generate"]
        if heads:
            raise ConfigError(f"{heads} classify with a head and write no answer; /generate takes adapters of a "
                              f"`method: generate` model (e.g. smollm2-135m-json), /predict takes every adapter")
    results = []
    for record in records:
        record, rows = predictors.predict(record.id, request.texts)
        results.append(schemas.AdapterPredictions(adapter=record.id, method=record.method, labels=record.labels,
                                                  predictions=[schemas.Prediction(**row) for row in rows]))
    return schemas.PredictResponse(texts=request.texts, results=results)


def create_app(settings: ServeSettings | None = None) -> FastAPI:
    """The API and UI, with its job runner started and stopped with the app (lifespan)."""
    settings = settings or ServeSettings()
    policy = settings.policy()
    runner = JobRunner(JobStore(), settings.max_jobs)
    predictors = PredictorCache(settings.loaded_adapters, settings.int8)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        runner.start()
        yield
        runner.stop()

    app = FastAPI(title="SentiCompare", version="0.1.0", lifespan=lifespan, docs_url=None, redoc_url=None,
                  description="Adapters of the study as products: registry, prediction, generation, merging, "
                              "trainings as background jobs, reports. Details: docs/serve.md.")
    app.add_middleware(GuardMiddleware, policy=policy)
    app.state.runner, app.state.predictors = runner, predictors

    @app.exception_handler(ConfigError)
    @app.exception_handler(DataError)
    async def refused(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse(status_code=422, content={"detail": str(exc)})

    @app.exception_handler(ModelError)
    async def model_missing(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse(status_code=503, content={"detail": str(exc)})

    @app.get("/healthz", tags=["service"])
    def healthz() -> dict[str, bool]:
        return {"ok": True}

    @app.get("/options", response_model=schemas.Options, tags=["service"])
    def options() -> schemas.Options:
        return schemas.Options(
            models={k: v.method for k, v in config.load_models().items()},
            datasets={k: v.labels for k, v in config.load_datasets().items()},
            presets=sorted(p.stem for p in (PARAMS_DIR / "presets").glob("*.yaml")),
            studies=sorted(p.stem for p in (PARAMS_DIR / "studies").glob("*.yaml")),
            auth=policy.token is not None)

    @app.get("/adapters", response_model=list[schemas.Adapter], tags=["adapters"])
    def adapters() -> list[schemas.Adapter]:
        return [schemas.Adapter(**dataclasses.asdict(r), present=r.present) for r in registry.list_adapters()]

    @app.post("/predict", response_model=schemas.PredictResponse, tags=["adapters"])
    def predict(request: schemas.PredictRequest) -> schemas.PredictResponse:
        """Each adapter's decision on each text: label, recalibrated probabilities, conformal set,
        abstain and confident (and a generator's answer), as `senticompare predict` writes them."""
        return _predictions(predictors, request)

    @app.post("/generate", response_model=schemas.PredictResponse, tags=["adapters"])
    def generate(request: schemas.GenerateRequest) -> schemas.PredictResponse:
        """Generative adapters only: each one's written answer per text, what it parses to, and its
        recalibrated probabilities."""
        return _predictions(predictors, request, generating_only=True)

    @app.post("/evaluate", response_model=schemas.EvaluateResponse, tags=["adapters"])
    def evaluate(request: schemas.EvaluateRequest) -> schemas.EvaluateResponse:
        """A single-label head scored on a registered dataset's split (up to 2,000 texts, in the
        request): accuracy and macro F1 with 95 % CIs, the majority class, conformal coverage, the
        confusion matrix, as `senticompare evaluate` (also written to experiments/evaluations/)."""
        result = evaluate_adapter(request.adapter, request.dataset, preset=request.preset, split=request.split,
                                  label_map=request.label_map, max_examples=request.max_examples, seed=request.seed,
                                  predict=lambda texts: predictors.predict(request.adapter, texts)[1])
        return schemas.EvaluateResponse(**result)

    @app.post("/evaluations", response_model=schemas.Job, status_code=202, tags=["jobs"])
    def evaluation_job(request: schemas.EvaluationJobRequest) -> schemas.Job:
        """/evaluate on more than 2,000 texts, or the whole split (`max_examples` null), as a background
        job: the adapter and dataset are checked now, the scoring runs as `senticompare evaluate`; its
        record at GET /jobs/{id}/evaluation once the job has succeeded."""
        record = registry.finished_run(request.adapter)
        spec = config.get_dataset(request.dataset)
        check_single_label(record, spec)
        argv = cli_command("evaluate", "--adapter", record.id, "--dataset", spec.id, "--split", request.split,
                           "--seed", str(request.seed),
                           *(["--preset", request.preset] if request.preset else []),
                           *(part for source, target in request.label_map.items()
                             for part in ("--label-map", f"{source}={target}")),
                           *(["--max-examples", str(request.max_examples)] if request.max_examples else []))
        size = f"{request.max_examples:,} texts" if request.max_examples else "every text"
        title = f"evaluate {record.id} on {spec.id} ({request.split}, {size})"
        return _job(runner.submit("evaluate", title, argv, str(output_file(record.id, spec.id, request.split))))

    @app.get("/jobs/{job_id}/evaluation", response_model=schemas.EvaluateResponse, tags=["jobs"])
    def job_evaluation(job_id: int) -> schemas.EvaluateResponse:
        """A succeeded evaluate job's record, as /evaluate answers it (read from
        experiments/evaluations/, where a later evaluation of the same adapter and dataset replaces it)."""
        record = runner.store.get(job_id)
        if record is None:
            raise HTTPException(404, f"no job {job_id}; GET /jobs lists them")
        if record.kind != "evaluate":
            raise HTTPException(404, f"job {job_id} is a {record.kind} job; only evaluate jobs (POST /evaluations) "
                                     f"have an evaluation")
        if record.state != "succeeded":
            raise HTTPException(409, f"job {job_id} is {record.state}; its evaluation is there once it has succeeded "
                                     f"(GET /jobs/{job_id} shows its state and log)")
        return schemas.EvaluateResponse(**read_json(Path(record.target)))

    @app.post("/merge", response_model=schemas.Job, status_code=202, tags=["jobs"])
    def merge(request: schemas.MergeRequest) -> schemas.Job:
        """Checked now (same base model and labels, LoRA placement, name), merged and evaluated as a job."""
        plan = plan_merge([WeightedAdapter(a.id, a.weight) for a in request.adapters], request.method,
                          request.out_id, density=request.density, dataset=request.dataset,
                          label_map=request.label_map)
        if plan.run_dir.exists() and not request.force:
            raise ConfigError(f"adapter {plan.id} exists; give another out_id, or force: true to replace it")
        argv = cli_command("merge", "--adapters", *(f"{a.id}:{a.weight!r}" for a in request.adapters),
                           "--method", request.method, "--out-id", request.out_id,
                           *(["--density", repr(request.density)] if request.density is not None else []),
                           *(["--dataset", request.dataset] if request.dataset else []),
                           *(part for source, target in request.label_map.items()
                             for part in ("--label-map", f"{source}={target}")),
                           *(["--force"] if request.force else []))
        title = f"merge {' + '.join(f'{a.id}:{a.weight:g}' for a in request.adapters)} ({request.method})"
        return _job(runner.submit("merge", title, argv, plan.id))

    @app.post("/train", response_model=schemas.Job, status_code=202, tags=["jobs"])
    def train(request: schemas.TrainRequest) -> schemas.Job:
        """A study run (`senticompare run`) as a background job, queued behind the running ones."""
        if request.form is not None:
            text = yaml.safe_dump(request.form.model_dump(), sort_keys=False)
        else:
            text = request.study_yaml
        study = check_study_text(text)
        argv = cli_command("run", "{folder}/study.yaml", *(["--force"] if request.force else []),
                           *([] if request.report else ["--no-report"]))
        title = f"train {study.name}: {', '.join(study.models)} × {', '.join(study.datasets)} ({study.preset})"
        return _job(runner.submit("train", title, argv, study.name, files={"study.yaml": text}))

    @app.get("/jobs", response_model=list[schemas.Job], tags=["jobs"])
    def jobs() -> list[schemas.Job]:
        """The newest first."""
        return [_job(record) for record in runner.store.list()]

    @app.get("/jobs/{job_id}", response_model=schemas.Job, tags=["jobs"])
    def job(job_id: int) -> schemas.Job:
        """State, stage, progress and the end of its log."""
        record = runner.store.get(job_id)
        if record is None:
            raise HTTPException(404, f"no job {job_id}; GET /jobs lists them")
        return _job(record, with_log=True)

    @app.post("/jobs/{job_id}/cancel", response_model=schemas.Job, tags=["jobs"])
    def cancel(job_id: int) -> schemas.Job:
        record = runner.cancel(job_id)
        if record is None:
            raise HTTPException(404, f"no job {job_id}; GET /jobs lists them")
        return _job(record)

    @app.get("/reports", response_model=list[schemas.Report], tags=["reports"])
    def reports() -> list[schemas.Report]:
        return [schemas.Report(study=p.stem, url=f"/reports/{p.stem}",
                               modified=datetime.fromtimestamp(p.stat().st_mtime, timezone.utc)
                               .isoformat(timespec="seconds"))
                for p in sorted(reports_dir().glob("*.html"))]

    @app.get("/reports/{study}", response_class=FileResponse, tags=["reports"])
    def report(study: str) -> FileResponse:
        """A study's rendered HTML report, sandboxed (no script runs in it)."""
        try:
            check_name(study, "study")
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from None
        path = reports_dir() / f"{study}.html"
        if not path.is_file():
            raise HTTPException(404, f"no report for study {study!r}; run the study (POST /train) or "
                                     f"`senticompare report {study}`")
        return FileResponse(path, media_type="text/html", headers={"Content-Security-Policy": REPORT_POLICY})

    ui.install(app)
    return app


def serve(settings: ServeSettings) -> None:
    """Run the app under uvicorn until interrupted; the policy is checked before anything starts."""
    import uvicorn

    settings.policy()
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level="info")
