"""params/bench.yaml read into checked records: what `senticompare bench` measures and how much.
Each record checks its own values, like the study's (helpers/config/base.py)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from helpers.config import ConfigError, TrainConfig, as_mapping, build, load_datasets, load_models, read_yaml
from helpers.config.base import check, one_of
from helpers.config.preset import COMPILE_MODES, MIN_MAX_LENGTH
from helpers.core.allocator import ALLOCATORS
from helpers.core.paths import PARAMS_DIR
from helpers.evaluate.quantize import INT8_MODES


TRAIN_ORDERS = ("interleaved", "sequential")


def _positive(value) -> bool:
    return value > 0


def _positives(values) -> bool:
    return bool(values) and all(v > 0 for v in values)


@dataclass(frozen=True)
class BenchData:
    id: str
    max_length: int
    train_examples: int
    validation_examples: int
    infer_examples: int
    batch_sizes: list[int] = field(default_factory=lambda: [1, 8, 32])  # inference, both paths
    extras: bool = False  # QLoRA (every model), threads and scaling (their models) are measured here
    # Where both paths' accuracy is scored: the validation split (at most a fifth of a source's
    # training rows: 800 Fine Foods reviews) or the held-out test split (1,000), for the paired test's
    # 1,000 examples. `validation_examples` caps either.
    accuracy_split: str = "validation"

    def __post_init__(self) -> None:
        check(self, [
            ("accuracy_split", "validation or test", lambda v: v in ("validation", "test")),
            ("max_length", f"at least {MIN_MAX_LENGTH} tokens", lambda v: v >= MIN_MAX_LENGTH),
            ("train_examples", "a positive integer", _positive),
            ("validation_examples", "a positive integer", _positive),
            ("infer_examples", "a positive integer", _positive),
            ("batch_sizes", "a list of positive integers", _positives),
        ])


@dataclass(frozen=True)
class InferSettings:
    warmup: int = 1
    repeats: int = 3
    latency_repeats: int = 15
    # torch.compile over our merged model (the pipeline stays eager, as users run it): one of
    # COMPILE_MODES; "reduce-overhead" replays a CUDA graph per padded batch shape. Every batch size
    # is warmed up when compiled (each shape compiles on its first pass).
    compile: str = "none"

    def __post_init__(self) -> None:
        check(self, [("compile", *one_of(COMPILE_MODES)),
                     ("warmup", "a non-negative integer", lambda v: v >= 0),
                     ("repeats", "a positive integer", _positive),
                     ("latency_repeats", "a positive integer", _positive)])


@dataclass(frozen=True)
class MatmulSettings:
    size: int = 1024
    warmup: int = 3
    repeats: int = 10

    def __post_init__(self) -> None:
        check(self, [("size", "a positive integer", _positive), ("warmup", "a non-negative integer", lambda v: v >= 0),
                     ("repeats", "a positive integer", _positive)])


@dataclass(frozen=True)
class ScalingSettings:
    models: list[str] = field(default_factory=list)  # empty: every model
    examples: int = 8
    factors: list[int] = field(default_factory=lambda: [1, 2, 4])
    max_lengths: list[int] = field(default_factory=lambda: [128, 256])

    def __post_init__(self) -> None:
        check(self, [("examples", "a positive integer", _positive),
                     ("factors", "a list of positive integers", _positives),
                     ("max_lengths", f"a list of lengths of at least {MIN_MAX_LENGTH}",
                      lambda v: bool(v) and all(n >= MIN_MAX_LENGTH for n in v))])


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
    # Int8 inference modes measured on our trained model against itself (helpers/evaluate/quantize.py):
    # accuracy on the held-out examples with exact McNemar, latency, throughput, weights.
    int8: list[str] = field(default_factory=list)
    # Optimizer steps of each path (after warmup_steps and one more) and inference passes of each
    # path at its best batch size profiled with torch.profiler (helpers/bench/profile.py); 0: none.
    profile_steps: int = 0
    # How the two paths' timed trainings share the machine: "sequential" trains one after the other,
    # each with its own peak memory; "interleaved" takes turns one optimizer step each
    # (helpers/bench/turns.py), so a change of the host's speed meets both, with one peak memory for
    # both; under glibc's default allocator the baseline's steps then ran 9-16 % slower than alone
    # (docs/performance.md), with `allocator: keep-freed` as fast.
    train_order: str = "sequential"
    # glibc's malloc for the whole bench process (helpers/core/allocator.py): "default", or
    # "keep-freed", which keeps freed memory instead of faulting it back in every step (the
    # baseline's padded activations; what slowed its steps when taking turns).
    allocator: str = "default"

    def __post_init__(self) -> None:
        check(self, [
            ("models", "a list of at least one model id", bool),
            ("datasets", "a list of at least one dataset entry", bool),
            ("warmup_steps", "a non-negative integer", lambda v: v >= 0),
            ("threads", "a list of positive thread counts", _positives),
            ("threads_train_steps", "a positive integer", _positive),
            ("profile_steps", "a non-negative integer", lambda v: v >= 0),
            ("train_order", *one_of(TRAIN_ORDERS)),
            ("allocator", *one_of(ALLOCATORS)),
            ("int8", f"a list of int8 modes from {list(INT8_MODES)}", lambda v: set(v) <= set(INT8_MODES)),
        ])
        if self.train.quantization != "none":
            raise ConfigError("train.quantization must be 'none'; QLoRA is measured beside LoRA (qlora: true)")
        if self.train.lora_layers:
            raise ConfigError("train.lora_layers must be 0: the FLOP count (4N per trained token) assumes a "
                              "backward pass through every layer")

    def dataset(self, dataset_id: str) -> BenchData:
        return next(d for d in self.datasets if d.id == dataset_id)


def load_bench(path: str | Path | None = None) -> BenchConfig:
    """Read and check a bench params file; unknown keys and ids fail before any model loads."""
    path = Path(path or PARAMS_DIR / "bench.yaml")
    bench = build(BenchConfig, as_mapping(read_yaml(path), str(path)), str(path))
    for kind, names, known in (("model", bench.models, load_models()),
                               ("dataset", [d.id for d in bench.datasets], load_datasets())):
        unknown = [n for n in names if n not in known]
        if unknown:
            raise ConfigError(f"{path}: unknown {kind} id(s) {unknown}; use ids from params/{kind}s.yaml")
    return bench
