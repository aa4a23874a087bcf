"""MLflow tracking of finished runs (a study's `tracking: [mlflow]`).

Each run that finishes becomes one MLflow run in the experiment named after the study: its
parameters (model, dataset, preset, seed, LoRA r and alpha, learning rate, quantization, data
fingerprint), its final metrics (accuracy, macro F1, precision, recall, ECE, latency, throughput,
training time), the training and validation curves step by step, and the adapter and results as
artifacts. The store is `MLFLOW_TRACKING_URI` where the user sets one, else the file store
`experiments/mlruns` (`MLFLOW_ALLOW_FILE_STORE=true mlflow ui --backend-store-uri experiments/mlruns`,
with the full `mlflow` package; the project installs the client, `mlflow-skinny`). TensorBoard needs no code here: the Trainer
writes its event files to `<run>/tensorboard/` (`tensorboard --logdir experiments/<study>`).
"""
from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from helpers.core.paths import experiments_dir

if TYPE_CHECKING:
    from helpers.pipeline.run import Run

FINAL_METRICS = ("accuracy", "f1", "precision", "recall", "latency_median_ms", "latency_p99_ms",
                 "throughput_samples_per_sec", "training_time_hours")
CURVES = ("loss", "learning_rate", "grad_norm", "eval_loss", "eval_accuracy", "eval_f1")


def tracking_uri() -> str:
    """The user's MLFLOW_TRACKING_URI, else a file store under experiments/ (MLflow 3 keeps its file
    store in maintenance mode and asks for MLFLOW_ALLOW_FILE_STORE=true to use it; a local folder
    beside the run folders is what this project wants, so the default opts in)."""
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    return (experiments_dir() / "mlruns").resolve().as_uri()


def log_to_mlflow(run: Run, results: dict[str, Any]) -> dict[str, str]:
    """Log one finished run; returns where it went ({"uri", "experiment", "run_id"})."""
    import mlflow

    train = run.preset.train
    mlflow.set_tracking_uri(tracking_uri())
    mlflow.set_experiment(run.study)
    with mlflow.start_run(run_name=f"{run.dataset.id}/{run.run_dir.name}") as active:
        mlflow.log_params({"model": run.model.id, "dataset": run.dataset.id, "preset": run.preset.name,
                           "seed": run.seed, "lora_r": train.lora_r, "lora_alpha": train.lora_alpha,
                           "learning_rate": train.learning_rate, "epochs": train.epochs,
                           "batch_size": train.batch_size, "quantization": train.quantization,
                           "data_fingerprint": results["data_fingerprint"]})
        mlflow.log_metrics({key: float(results[key]) for key in FINAL_METRICS if results.get(key) is not None})
        mlflow.log_metric("ece", float(results["quality"]["ece"]))
        for entry in results["training"]["log_history"]:
            for key in CURVES:
                if key in entry and "step" in entry:
                    mlflow.log_metric(key, float(entry[key]), step=int(entry["step"]))
        mlflow.log_artifacts(str(run.adapter_dir), "adapter")
        return {"uri": tracking_uri(), "experiment": run.study, "run_id": active.info.run_id}
