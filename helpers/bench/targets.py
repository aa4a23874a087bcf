"""Issue 22's targets for the bench: 2x the baseline on a CPU, 3x on a GPU, half the matmul peak,
at equal accuracy (exact McNemar p > 0.05 between the two paths and at most 1 point apart, on at
least 1,000 examples). One place, read by the bench run and by its tables."""
from __future__ import annotations

SPEEDUP = {"cpu": 2.0, "cuda": 3.0}
MFU = 0.5
ACCURACY_POINTS = 1.0
ACCURACY_P = 0.05
ACCURACY_EXAMPLES = 1000


def speedup_for(device: str) -> float:
    return SPEEDUP.get(device, SPEEDUP["cpu"])


def accuracy_equal(points_apart: float, p_value: float, examples: int) -> bool:
    """Both paths equally accurate by the issue's rule: `points_apart` is ours minus the baseline's
    accuracy in points, `p_value` the exact McNemar between their answers on `examples`."""
    return abs(points_apart) <= ACCURACY_POINTS and p_value > ACCURACY_P and examples >= ACCURACY_EXAMPLES
