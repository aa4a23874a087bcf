"""params/bench.yaml read into checked records: what `senticompare bench` measures and how much."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from helpers import config
from helpers.config import ConfigError, TrainConfig
from helpers.paths import PARAMS_DIR


@dataclass(frozen=True)
class BenchData:
    id: str
    max_length: int
    train_examples: int
    validation_examples: int
    infer_examples: int
    batch_sizes: list[int] = field(default_factory=lambda: [1, 8, 32])  # inference, both paths
    extras: bool = False  # QLoRA (every model), threads and scaling (their models) are measured here


@dataclass(frozen=True)
class InferSettings:
    warmup: int = 1
    repeats: int = 3
    latency_repeats: int = 15


@dataclass(frozen=True)
class MatmulSettings:
    size: int = 1024
    warmup: int = 3
    repeats: int = 10


@dataclass(frozen=True)
class ScalingSettings:
    models: list[str] = field(default_factory=list)  # empty: every model
    examples: int = 8
    factors: list[int] = field(default_factory=lambda: [1, 2, 4])
    max_lengths: list[int] = field(default_factory=lambda: [128, 256])


@dataclass(frozen=True)
class BenchConfig:
    name: str
    models: list[str]
    datasets: list[BenchData]
    seed: int = 1337
    data_dir: str | None = None
    train: TrainConfig = field(default_factory=TrainConfig)
    warmup_steps: int = 1
    infer: InferSettings = field(default_factory=InferSettings)
    matmul: MatmulSettings = field(default_factory=MatmulSettings)
    threads: list[int] = field(default_factory=lambda: [1, 2])
    threads_train_steps: int = 3
    threads_models: list[str] = field(default_factory=list)  # empty: every model
    scaling: ScalingSettings = field(default_factory=ScalingSettings)
    qlora: bool = True

    def dataset(self, dataset_id: str) -> BenchData:
        return next(d for d in self.datasets if d.id == dataset_id)


def load_bench(path: str | Path | None = None) -> BenchConfig:
    """Read and check a bench params file; unknown keys and ids fail before any model loads."""
    path = Path(path or PARAMS_DIR / "bench.yaml")
    data = dict(config._mapping(config.read_yaml(path), str(path)))
    sections = {
        "train": config._record(TrainConfig, config._mapping(data.pop("train", {}), f"{path}: train"), f"{path}: train"),
        "infer": config._record(InferSettings, config._mapping(data.pop("infer", {}), f"{path}: infer"), f"{path}: infer"),
        "matmul": config._record(MatmulSettings, config._mapping(data.pop("matmul", {}), f"{path}: matmul"),
                                 f"{path}: matmul"),
        "scaling": config._record(ScalingSettings, config._mapping(data.pop("scaling", {}), f"{path}: scaling"),
                                  f"{path}: scaling"),
    }
    entries = data.pop("datasets", None)
    if not isinstance(entries, list) or not entries:
        raise ConfigError(f"{path}: 'datasets' must list at least one dataset entry")
    sections["datasets"] = [config._record(BenchData, config._mapping(e, f"{path}: datasets"), f"{path}: datasets")
                            for e in entries]
    bench = config._record(BenchConfig, data, str(path), **sections)
    known_models, known_datasets = config.load_models(), config.load_datasets()
    for kind, names, known in (("model", bench.models, known_models),
                               ("dataset", [d.id for d in bench.datasets], known_datasets)):
        unknown = [n for n in names if n not in known]
        if not names or unknown:
            raise ConfigError(f"{path}: unknown or no {kind} id(s) {unknown}; use ids from params/{kind}s.yaml")
    if bench.train.quantization != "none":
        raise ConfigError(f"{path}: train.quantization must be 'none'; QLoRA is measured beside LoRA (qlora: true)")
    if bench.train.lora_layers:
        raise ConfigError(f"{path}: train.lora_layers must be 0: the FLOP count (4N per trained token) assumes "
                          f"a backward pass through every layer")
    return bench
