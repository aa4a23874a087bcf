"""Two finished runs side by side, wherever they were recorded: `senticompare pair RUN_A RUN_B`.

A study's report pairs the runs of one study. A recipe grid grows by studies, though (issue 24's
recipes_cpu, then recipes_cpu_onepass and recipes_cpu_decoders against recipes_cpu's full
fine-tune), and a reviewer who adds one variant should not rerun the reference to get its McNemar
test. Two runs pair when they scored the same test split (the same data fingerprint: dataset,
preset and seed): their predictions are matched by example and checked to carry the same labels.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from helpers.compare.runs import run_correct
from helpers.core.io import read_json
from helpers.evaluate.significance import mcnemar_exact


HOST_SPEED_TOLERANCE = 0.15  # one host's matmul speed varied by 15-40 % between hours (docs/recipes.md)


class PairError(ValueError):
    """Two runs that cannot be paired; the message names the file and the fix."""


@dataclass(frozen=True)
class RunSide:
    run_dir: str
    model: str
    seed: int | None
    accuracy: float
    accuracy_ci95: tuple[float, float] | None
    training_time_s: float | None
    steps: int | None
    trainable_params: int | None
    artifact_mb: float | None
    method: str | None
    matmul_gflops: float | None  # the host's speed at the run's 04_speed: training times compare only near it


@dataclass(frozen=True)
class Pair:
    a: RunSide
    b: RunSide
    test_examples: int
    a_only_correct: int
    b_only_correct: int
    p_value: float

    @property
    def accuracy_difference(self) -> float:
        """B's accuracy less A's, on the shared examples."""
        return self.b.accuracy - self.a.accuracy

    @property
    def host_speed_ratio(self) -> float | None:
        """B's host matmul speed over A's: far from 1, the two trained in different hours or on
        different hosts and their time ratio says as much about the host as about the runs."""
        if not self.a.matmul_gflops or not self.b.matmul_gflops:
            return None
        return self.b.matmul_gflops / self.a.matmul_gflops

    @property
    def time_ratio(self) -> float | None:
        """B's training time as a share of A's (issue 24's "a third of the full fine-tune's time")."""
        if not self.a.training_time_s or self.b.training_time_s is None:
            return None
        return self.b.training_time_s / self.a.training_time_s

    def to_dict(self) -> dict:
        return {**asdict(self), "accuracy_difference": self.accuracy_difference, "time_ratio": self.time_ratio,
                "host_speed_ratio": self.host_speed_ratio}


def _results(run_dir: Path) -> dict:
    for name in ("results.json", "predictions.csv"):
        if not (run_dir / name).is_file():
            raise PairError(f"{run_dir / name} is missing: pair needs a finished run folder "
                            f"(experiments/<study>/<dataset>/<model>/ or its published copy)")
    return read_json(run_dir / "results.json")


def _side(run_dir: Path, results: dict, correct: pd.Series) -> RunSide:
    quality, training = results.get("quality", {}), results.get("training", {})
    ci = quality.get("accuracy_ci95")
    return RunSide(
        run_dir=str(run_dir), model=results.get("model_name", run_dir.name), seed=results.get("seed"),
        accuracy=float(correct.mean()), accuracy_ci95=tuple(ci) if ci else None,
        training_time_s=training.get("training_time_s"), steps=training.get("steps"),
        trainable_params=results.get("trainable_params"), artifact_mb=results.get("artifact_mb"),
        method=training.get("method"),
        matmul_gflops=(results.get("speed", {}).get("matmul_peak") or {}).get("gflops"))


def pair_runs(run_a: str | Path, run_b: str | Path) -> Pair:
    """Exact McNemar between two finished runs on the test examples they share, with each run's
    accuracy, training time, trainable weights and artefact size. Raises PairError when the runs
    scored different test splits."""
    dir_a, dir_b = Path(run_a), Path(run_b)
    results_a, results_b = _results(dir_a), _results(dir_b)
    for run_dir, results in ((dir_a, results_a), (dir_b, results_b)):
        if results.get("label_type", "single") != "single":
            raise PairError(f"{run_dir} is a {results['label_type']}-label run: pair tests right/wrong answers "
                            f"(McNemar); compare multi-label and graded runs within one study (its paired bootstrap)")
    fingerprints = results_a.get("data_fingerprint"), results_b.get("data_fingerprint")
    if None not in fingerprints and fingerprints[0] != fingerprints[1]:
        raise PairError(f"{dir_a} and {dir_b} scored different test splits (data fingerprints {fingerprints[0]} "
                        f"and {fingerprints[1]}): pair runs of the same dataset, preset and seed")
    correct_a, labels_a = run_correct(dir_a)
    correct_b, labels_b = run_correct(dir_b)
    if not correct_a.index.equals(correct_b.index) or not np.array_equal(labels_a, labels_b):
        raise PairError(f"{dir_a / 'predictions.csv'} and {dir_b / 'predictions.csv'} hold different test "
                        f"examples or labels: pair runs of the same dataset, preset and seed")
    a_only, b_only, p_value = mcnemar_exact(correct_a.to_numpy(), correct_b.to_numpy())
    return Pair(a=_side(dir_a, results_a, correct_a), b=_side(dir_b, results_b, correct_b),
                test_examples=len(correct_a), a_only_correct=a_only, b_only_correct=b_only, p_value=p_value)


def _number(value: float | int | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def format_pair(pair: Pair) -> str:
    """The pair as a small table and one line of the test, for the terminal."""
    rows = []
    for tag, side in (("A", pair.a), ("B", pair.b)):
        ci = f"({side.accuracy_ci95[0]:.3f}-{side.accuracy_ci95[1]:.3f})" if side.accuracy_ci95 else ""
        rows.append([tag, f"{side.model} (seed {side.seed})", side.method or "-", f"{side.accuracy:.3f} {ci}".strip(),
                     _number(side.training_time_s, ".0f"), _number(side.steps, ",d"),
                     _number(side.trainable_params, ",d"), _number(side.artifact_mb, ".1f"),
                     _number(side.matmul_gflops, ".0f")])
    header = ["", "run", "method", "accuracy (95 % CI)", "training s", "steps", "trainable", "artefact MB",
              "matmul GFLOP/s"]
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(cell).ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
             for row in [header, *rows]]
    ratio = f", B's training time {pair.time_ratio:.2f} of A's" if pair.time_ratio is not None else ""
    lines.append(f"B - A: {100 * pair.accuracy_difference:+.1f} points on {pair.test_examples:,} test examples; "
                 f"only A right {pair.a_only_correct}, only B right {pair.b_only_correct}, exact McNemar "
                 f"p = {pair.p_value:.3g}{ratio}")
    speed = pair.host_speed_ratio
    if speed is not None and abs(speed - 1) > HOST_SPEED_TOLERANCE:
        lines.append(f"The two runs' matmul speeds differ by {100 * abs(speed - 1):.0f} %: they were measured in "
                     f"different hours or on different hosts, so the time ratio is partly the host's")
    return "\n".join(lines)
