"""Where a step's time goes: torch.profiler over a few training steps or inference passes, after
their warm-up, summarized per step as wall time, the device's busy time and share, kernel launches,
aten calls and the top operators.

Issue 22 asks for this before and after each change to the training path: on the H100 the small
models' steps were bound by the host's kernel launches (about 8,000 a step, the GPU busy 16-45 ms of
a 170-280 ms step), so the busy share and the launches per step are the numbers that show whether
CUDA graphs or fused kernels moved the bound. On a CPU there is no device timeline: busy is None.
"""
from __future__ import annotations

from collections.abc import Callable

from torch.autograd import DeviceType
from torch.profiler import ProfilerActivity, profile, schedule
from transformers import TrainerCallback

from helpers.core.device import synchronize

STEP_EVENT = "ProfilerStep"  # the range torch.profiler records around each step of a schedule (#N or *)
TOP_OPERATORS = 10


def activities(device: str) -> list[ProfilerActivity]:
    return [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device == "cuda" else [])


def step_schedule(skip: int, steps: int):
    """Profile `steps` steps after `skip` unprofiled ones and one warm-up step (the profiler's own)."""
    return schedule(skip_first=skip, wait=0, warmup=1, active=steps, repeat=1)


def union_us(intervals: list[tuple[float, float]]) -> float:
    """Microseconds covered by at least one interval: the device's busy time, kernels that overlap
    on several streams counted once."""
    busy, reached = 0.0, float("-inf")
    for start, end in sorted(intervals):
        if end > reached:
            busy += end - max(start, reached)
            reached = end
    return busy


def _self_us(average, device: str) -> float:
    if device == "cuda":
        return float(getattr(average, "self_device_time_total", 0.0))
    return float(average.self_cpu_time_total)


def summarize(prof: profile, device: str) -> dict:
    """Per profiled step (the steps' recorded ranges): wall ms, device busy ms and share of the wall
    (None on a CPU), kernels and CUDA graph launches, aten calls (nested ones too), and the top
    operators by self time on the device (on a CPU, on the host)."""
    events = prof.events()
    step_ranges = [e for e in events if e.name.startswith(STEP_EVENT)]
    steps = max(len(step_ranges), 1)
    wall_us = sum(e.time_range.elapsed_us() for e in step_ranges)
    kernels = [e for e in events if e.device_type == DeviceType.CUDA]
    busy_us = union_us([(k.time_range.start, k.time_range.end) for k in kernels]) if device == "cuda" else None
    averages = sorted(prof.key_averages(), key=lambda a: _self_us(a, device), reverse=True)
    return {
        "steps": len(step_ranges),
        "wall_ms_per_step": wall_us / 1000.0 / steps,
        "device_busy_ms_per_step": None if busy_us is None else busy_us / 1000.0 / steps,
        "device_busy_share": None if busy_us is None or not wall_us else busy_us / wall_us,
        "kernels_per_step": len(kernels) / steps if device == "cuda" else None,
        "cuda_graph_launches_per_step": (sum(e.name == "cudaGraphLaunch" for e in events) / steps
                                         if device == "cuda" else None),
        "aten_calls_per_step": sum(e.name.startswith("aten::") for e in events) / steps,
        "top": [{"name": a.key, "calls_per_step": a.count / steps,
                 "self_ms_per_step": _self_us(a, device) / 1000.0 / steps} for a in averages[:TOP_OPERATORS]],
    }


class StepProfiler(TrainerCallback):
    """Profiles optimizer steps skip+2 .. skip+1+steps of a training (the first `skip` and one more
    left out as warm-up); `summary` holds `summarize`'s record once the training ends."""

    def __init__(self, device: str, skip: int, steps: int) -> None:
        self.device = device
        self.profiler = profile(activities=activities(device), schedule=step_schedule(skip, steps))
        self.summary: dict | None = None

    def on_train_begin(self, args, state, control, **kwargs):
        self.profiler.start()

    def on_step_end(self, args, state, control, **kwargs):
        synchronize(self.device)  # the step's kernels end inside its range
        self.profiler.step()

    def on_train_end(self, args, state, control, **kwargs):
        self.profiler.stop()
        self.summary = summarize(self.profiler, self.device)


def profile_calls(fn: Callable[[], object], device: str, steps: int, skip: int = 1) -> dict:
    """`summarize` over `steps` calls of `fn` (an inference pass), after `skip` + 1 unprofiled ones."""
    with profile(activities=activities(device), schedule=step_schedule(skip, steps)) as prof:
        for _ in range(skip + 1 + steps):
            fn()
            synchronize(device)
            prof.step()
    return summarize(prof, device)
