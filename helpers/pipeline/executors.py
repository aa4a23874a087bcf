"""How a study's runs execute: a registry of executors, as papermill has engines. The study's
`executor:` (or `senticompare run --executor`) picks one; each takes the runs to do and a function
that executes some stages of one run in a kernel environment, and returns each run's failure.

- `serial` (the default): every stage of one run, then the next run.
- `local`: up to `max_workers` runs at once on this machine, each stage in its own kernel as
  always (the runner's threads only wait on them), then every run's 04_speed one after another,
  so that no latency or throughput is measured while another run trains. On a host with several
  GPUs each worker gets its own (`CUDA_VISIBLE_DEVICES`); on one GPU the workers share it, which
  pays because a small model's training step is bound by the host's kernel launches, not by the
  GPU (docs/performance.md). Each worker's kernels get `SENTICOMPARE_THREADS` = its share of the
  cores unless the user pinned it: with the same pinned count a run's numbers equal the serial
  executor's on CPU (tests/test_executors.py).
- `ray`: one Ray task per run on a Ray cluster (`ray.init(address=...)`, the study's `ray:`
  settings), each with `num_cpus` and `num_gpus` of its own; the task calls the same stage runner
  in a Ray worker process, which starts the stage kernels there as this machine would. Then every
  run's 04_speed as a task that holds a whole node's CPUs, one at a time per node. A task whose
  worker died is retried once (Ray's `max_retries`), then the run is recorded as failed with the
  stage unknown (None: the runner names the first stage without a record). Results go to the
  run folder where it lies, which every worker must see (`results: shared`: one machine or a
  shared filesystem), or (`results: copy`) each task gets the run folder zipped through Ray's
  object store, executes it in the worker's own checkout and sends it back the same way, and the
  runner moves it into place whole (docs/scale.md).

A run folder is the same whoever executes it: the executor changes when a stage runs, never what
it is given, so it is not part of a run's parameters and a finished study reruns under another
executor without redoing anything.
"""
from __future__ import annotations

import dataclasses
import io
import logging
import os
import queue
import shutil
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence, TypeVar

from tqdm.auto import tqdm

from helpers.core.paths import resolve
from helpers.core.threads import ENV as THREADS_ENV

if TYPE_CHECKING:
    from helpers.config.study import RayConfig

log = logging.getLogger(__name__)

Plan = TypeVar("Plan")
SPEED_STAGE = "04_speed"


@dataclass(frozen=True)
class Failure:
    stage: str | None  # None: the run was lost with its worker, in a stage the executor cannot know
    error: str


# Executes `stages` of one run in order with extra kernel environment; the first failure, or None.
StageRunner = Callable[[Plan, Sequence[str], dict[str, str]], "Failure | None"]


def default_workers() -> int:
    """One worker per GPU on a host with several, else one."""
    import torch  # here: a study's config names the executors without loading torch

    return max(1, torch.cuda.device_count())


def worker_envs(workers: int) -> list[dict[str, str]]:
    """Each worker's kernel environment: its GPU where the host has several, its share of the
    CPU cores unless SENTICOMPARE_THREADS is set."""
    import torch

    gpus = torch.cuda.device_count()
    envs = []
    for slot in range(workers):
        env = {}
        if gpus > 1:
            env["CUDA_VISIBLE_DEVICES"] = str(slot % gpus)
        if not os.environ.get(THREADS_ENV):
            env[THREADS_ENV] = str(max(1, (os.cpu_count() or 1) // workers))
        envs.append(env)
    return envs


def serial(plans: Sequence[Plan], run: StageRunner, stages: Sequence[str], max_workers: int | None = None,
           cluster: RayConfig | None = None) -> list[Failure | None]:
    return [run(plan, stages, {}) for plan in plans]


def local(plans: Sequence[Plan], run: StageRunner, stages: Sequence[str], max_workers: int | None = None,
          cluster: RayConfig | None = None) -> list[Failure | None]:
    workers = max(1, min(max_workers or default_workers(), len(plans)))
    before_speed = [stage for stage in stages if stage != SPEED_STAGE]
    slots: queue.Queue[dict[str, str]] = queue.Queue()
    for env in worker_envs(workers):
        slots.put(env)

    def in_a_slot(plan: Plan) -> Failure | None:
        env = slots.get()
        try:
            return run(plan, before_speed, env)
        finally:
            slots.put(env)

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="run") as pool:
        failures = list(pool.map(in_a_slot, plans))
    if SPEED_STAGE in stages:
        failures = [failure or run(plan, [SPEED_STAGE], {}) for plan, failure in zip(plans, failures, strict=True)]
    return failures


LOST_RETRIES = 1  # a Ray task whose worker died runs once more, then its run is recorded as failed


def pack(folder: Path) -> bytes:
    """A folder's files as zip bytes, stored (adapters, parquet and notebooks' images are compressed already)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                archive.write(path, path.relative_to(folder).as_posix())
    return buffer.getvalue()


def unpack(data: bytes, folder: Path) -> Path:
    """Put packed files in place of `folder` whole: unpacked beside it, then renamed over it."""
    incoming, old = folder.with_name(f".{folder.name}.incoming"), folder.with_name(f".{folder.name}.old")
    for leftover in (incoming, old):
        shutil.rmtree(leftover, ignore_errors=True)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        archive.extractall(incoming)
    if folder.exists():
        os.replace(folder, old)
    os.replace(incoming, folder)
    shutil.rmtree(old, ignore_errors=True)
    return folder


def _in_worker(run: StageRunner, plan: Plan, stages: Sequence[str], env: dict[str, str], packed: bytes | None,
               driver_node: str) -> tuple[Failure | None, bytes | None]:
    """A Ray task: `stages` of one run in this worker process. With `packed` (results: copy) on
    another node than the runner's, in a copy of the run folder at its place in this worker's
    checkout, sent back packed and removed here; on the runner's own node, in the folder itself."""
    import ray

    if packed is None or ray.get_runtime_context().get_node_id() == driver_node:
        return run(plan, stages, env), None
    here = dataclasses.replace(plan, run_dir=resolve(plan.params["run_dir"]))
    unpack(packed, here.run_dir)
    try:
        failure = run(here, stages, env)
        return failure, pack(here.run_dir)
    finally:
        shutil.rmtree(here.run_dir, ignore_errors=True)


def _driver_node(ray: Any) -> str:
    """The Ray node this runner is on; none for a Ray Client driver (ray://), which runs off the
    cluster: under `results: copy` all of its tasks copy."""
    from ray.util.client import ray as client

    return "" if client.is_connected() else ray.get_runtime_context().get_node_id()


def _schedule(ray: Any, jobs: Sequence[int], slots: Sequence[Any], start: Callable[[int, Any], Any],
              finish: Callable[[int, Any], None]) -> None:
    """Start jobs while a slot is free (a slot per task in flight, or a node), `finish` each as it ends."""
    pending, free, running = list(jobs), list(slots), {}
    while pending or running:
        while pending and free:
            slot, job = free.pop(0), pending.pop(0)
            running[start(job, slot)] = (job, slot)
        (ref,), _ = ray.wait(list(running), num_returns=1)
        job, slot = running.pop(ref)
        free.append(slot)
        finish(job, ref)


def _speed_nodes(ray: Any, num_cpus: float, num_gpus: float) -> dict[str, float]:
    """Each live node that fits a run, with its CPU count: a speed task takes them all."""
    return {node["NodeID"]: node["Resources"]["CPU"] for node in ray.nodes()
            if node["Alive"] and node["Resources"].get("CPU", 0) >= num_cpus
            and node["Resources"].get("GPU", 0) >= num_gpus}


def ray_tasks(plans: Sequence[Plan], run: StageRunner, stages: Sequence[str], max_workers: int | None = None,
              cluster: RayConfig | None = None) -> list[Failure | None]:
    """One Ray task per run (at most `max_workers` in flight, default: as many as the cluster
    fits), then each 04_speed alone on a node; see the module docstring. Connects to
    `cluster.address`, or starts Ray on this machine, unless this process is connected already."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    from helpers.config.study import RayConfig

    cluster = cluster or RayConfig()
    started = not ray.is_initialized()
    if started:
        ray.init(address=cluster.address, **({} if cluster.address else {"include_dashboard": False}))
    try:
        gpus = cluster.num_gpus if cluster.num_gpus is not None else float(ray.cluster_resources().get("GPU", 0) > 0)
        pinned = os.environ.get(THREADS_ENV)
        task_env = {THREADS_ENV: pinned or str(max(1, int(cluster.num_cpus)))}
        speed_env = {THREADS_ENV: pinned} if pinned else {}
        task = ray.remote(max_retries=LOST_RETRIES, retry_exceptions=False)(_in_worker)
        runner, driver = ray.put(run), _driver_node(ray)
        copy = cluster.results == "copy"
        failures: list[Failure | None] = [None] * len(plans)

        def start(i: int, stages_now: Sequence[str], env: dict[str, str], **options: Any) -> Any:
            packed = pack(plans[i].run_dir) if copy else None
            return task.options(**options).remote(runner, plans[i], list(stages_now), env, packed, driver)

        def settle(i: int, ref: Any, bar: tqdm, last: bool) -> None:
            try:
                failure, packed = ray.get(ref)
                if packed is not None:
                    unpack(packed, plans[i].run_dir)
            except ray.exceptions.RayTaskError as exc:  # the runner itself raised: a failed notebook never does
                failure = Failure(None, f"{type(exc.cause).__name__}: {exc.cause}")
            except ray.exceptions.RayError as exc:
                failure = Failure(None, f"lost with its worker, also when retried: {type(exc).__name__}")
            except OSError as exc:
                failure = Failure(None, f"its run folder could not be put back: {exc}")
            failures[i] = failure
            if failure is not None or last:
                bar.update(1)
                bar.set_postfix(failed=sum(f is not None for f in failures))

        before_speed = [stage for stage in stages if stage != SPEED_STAGE]
        timed = SPEED_STAGE in stages
        with tqdm(total=len(plans), desc="runs on Ray", unit="run") as bar:
            _schedule(ray, range(len(plans)), [None] * max(1, min(max_workers or len(plans), len(plans))),
                      lambda i, _: start(i, before_speed, task_env, num_cpus=cluster.num_cpus, num_gpus=gpus),
                      lambda i, ref: settle(i, ref, bar, last=not timed))
            speeds = [i for i, failure in enumerate(failures) if failure is None] if timed else []
            nodes = _speed_nodes(ray, cluster.num_cpus, gpus) if speeds else {}
            if speeds and not nodes:
                for i in speeds:
                    failures[i] = Failure(SPEED_STAGE, f"no live Ray node has {cluster.num_cpus} CPUs and {gpus} GPUs")
                bar.update(len(speeds))
                speeds = []
            _schedule(ray, speeds, list(nodes), lambda i, node: start(
                i, [SPEED_STAGE], speed_env, num_cpus=nodes[node], num_gpus=gpus,
                scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False)),
                lambda i, ref: settle(i, ref, bar, last=True))
        return failures
    finally:
        if started:
            ray.shutdown()


EXECUTORS: dict[str, Callable[..., list[Failure | None]]] = {"serial": serial, "local": local, "ray": ray_tasks}
# Executors whose stage runner runs in other processes: the runner's own progress bar stays empty
# there, so they show one of runs done.
REMOTE = {"ray"}


def get(name: str) -> Callable[..., list[Failure | None]]:
    if name not in EXECUTORS:
        raise KeyError(f"unknown executor {name!r}; use one of {sorted(EXECUTORS)}")
    return EXECUTORS[name]
