"""A finished run's recorded settings against the ones today's code resolves for it.

A reviewer reruns one stage of a recorded run and expects its numbers again (README). That holds
only while the code resolves the same settings from the run's `params.yaml`, which names a preset
and overrides, not their values: a preset's content or a setting's default can change between
commits. Commit 0838c14 did both (`train.sampling` now defaults to the Trainer's random batches,
and `standard` runs micro-batches of 4), so a run recorded before it and retrained at a later
commit would have drawn other batches and given other numbers without a word. `results.json`
keeps the settings a run was made with (`params`), so a rerun compares before it writes anything
and stops, naming each setting that moved and the commit the run was made at. A setting added
later (`INTRODUCED`) reads, in a record made before it, as the value that ran then.

Commands that read a finished run's adapter (predict, serve, export, evaluate on other data,
generate) take its inputs' settings from today's resolution too: they stop only when one of
those moved (`READ`), since a change to how it trained does not change what it predicts.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from helpers.config import ConfigError
from helpers.core.io import plain, read_json

# The settings that decide a run's numbers. Left out: where the data lies (data_dir: a reviewer's
# mirror), the device (another machine gives float noise, not other settings) and the study name.
COMPARED = ("model", "dataset", "preset", "seed", "adapter")
IGNORED_KEYS = frozenset({"description"})  # prose only
NOT_SET = "<not set>"
# What a reader of the adapter takes from today's resolution: the model (not its training recipe),
# the labels and the prompt, how a text becomes the model's input, how a generator decodes, and the
# base the adapter loads onto. Where the training data came from is not read.
READ = ("adapter", "model", "dataset.task", "dataset.label_type", "dataset.labels", "dataset.question",
        "dataset.verbalizers", "dataset.abstain_labels", "dataset.context_column", "preset.max_length",
        "preset.truncation_side", "preset.context_mode", "preset.generation", "preset.train.method",
        "preset.train.quantization")
NOT_READ = ("model.train", "model.recipe")
# Settings added after runs were recorded whose value, absent from a record, is how those runs ran:
# a record without the key equals a resolution with this value. A new setting whose default changes
# how a run trains belongs here only under the value that reproduces the old behaviour.
INTRODUCED = {"preset.train.micro_batch_split": "even"}


def differences(recorded: Any, resolved: Any, where: str,
                minds: Callable[[str], bool] = lambda key: True) -> list[str]:
    """Every setting under `where` that `minds` and whose recorded value differs from the resolved
    one, as `key: recorded -> resolved`; a key one side lacks shows as <not set> there."""
    if isinstance(recorded, dict) and isinstance(resolved, dict):
        return [line for key in sorted(set(recorded) | set(resolved)) if key not in IGNORED_KEYS
                for line in differences(recorded.get(key, NOT_SET), resolved.get(key, NOT_SET), f"{where}.{key}",
                                        minds)]
    if recorded == NOT_SET and where in INTRODUCED:
        recorded = INTRODUCED[where]
    return [] if recorded == resolved or not minds(where) else [f"{where}: {recorded!r} -> {resolved!r}"]


def _under(key: str, prefixes: tuple[str, ...]) -> bool:
    return any(key == prefix or key.startswith(prefix + ".") for prefix in prefixes)


def read_by_adapter(key: str) -> bool:
    return _under(key, READ) and not _under(key, NOT_READ)


def check_rerun(run_dir: Path, resolved: dict[str, Any], reading: bool = False) -> None:
    """Raise a ConfigError naming what moved when `run_dir` holds a finished run (results.json)
    made with other settings than `resolved` (helpers.pipeline.run.run_params); `reading` for a
    command that reads its adapter, which minds only the settings in READ."""
    results = run_dir / "results.json"
    if not results.is_file():
        return
    record = read_json(results)
    recorded = record.get("params")
    if not isinstance(recorded, dict):
        raise ConfigError(f"{results} records no `params`, so a rerun cannot be checked against it: "
                          f"run it again in a new run_dir")
    now = plain(resolved)
    minds = read_by_adapter if reading else (lambda key: True)
    moved = [line for key in COMPARED for line in differences(recorded.get(key), now.get(key), key, minds)]
    if not moved:
        return
    commit = (record.get("environment", {}).get("git") or {}).get("commit")
    at_commit = (f"at that commit (git worktree add ../rerun {commit[:12]})" if commit
                 else "at the commit it was made at (its results.json does not name it)")
    shown = "\n  ".join(moved[:12]) + (f"\n  ... and {len(moved) - 12} more" if len(moved) > 12 else "")
    made = (f"{run_dir} was made at commit {commit or '(not recorded)'} with settings this code no longer "
            f"resolves from its params.yaml:\n  {shown}\n")
    again = ("make the run again under today's settings (senticompare run <study> --force keeps the old results "
             "until the new ones finish)")
    if reading:
        raise ConfigError(made + f"Its adapter would see texts, labels or decoding unlike those it was trained "
                                 f"and evaluated with. Read it {at_commit}, or {again}.")
    raise ConfigError(made + f"Its numbers belong to those settings, so neither a stage rerun nor a study may reuse "
                             f"or overwrite them here. Rerun a stage {at_commit}; {again}; or report it as it was "
                             f"made (senticompare report <study>).")
