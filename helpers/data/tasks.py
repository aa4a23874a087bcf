"""Task datasets (`task: instruction | sql` in params/datasets.yaml): read, split and checked.

A task's standardized rows have `text` (the instruction with its input, or the question), `target`
(the answer or gold query to learn) and for SQL `schema` (the database's CREATE TABLE statements,
helpers/generate/sql.py) and `group` (the database, `db_id`). The columns come from the entry
(text_column, label_column) or, left out, from the records' known layout (`LAYOUTS`): Alpaca's
instruction / input / output, plain input / output, GSM8K's question / answer; Spider's question /
query / db_id, gretelai/synthetic_text_to_sql's sql_prompt / sql. Several prompt columns are joined
with a blank line, an empty one left out.

Splits are reproducible by seed: where the entry has a group column (Spider's `db_id`) the test
split takes whole groups, so no test database is seen in training; otherwise rows at random. The
preset's caps apply (max_train, max_validation, max_test; no calibration split: a task has no
class probabilities to calibrate). The fingerprint covers every prompt part and target.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from helpers.config import ConfigError, DatasetSpec, Preset
from helpers.core.io import read_json
from helpers.data import cache
from helpers.data.checks import MIN_TEST_ROWS, long_texts
from helpers.data.records import SPLITS, DataError, DatasetSplits, Finding
from helpers.data.sources import _cache_key, _locate, _read_source
from helpers.generate.sql import render_schema

if TYPE_CHECKING:
    from helpers.pipeline.run import Run

TEST_SHARE = 0.2  # of the source's rows, where it has no test split


@dataclass(frozen=True)
class Layout:
    name: str
    prompt: tuple[str, ...]  # the first is required; the others are joined where present
    target: str


LAYOUTS = {
    "instruction": (Layout("alpaca", ("instruction", "input"), "output"), Layout("gsm8k", ("question",), "answer"),
                    Layout("plain", ("input",), "output")),
    "sql": (Layout("spider", ("question",), "query"), Layout("gretel", ("sql_prompt",), "sql")),
}


def layout(spec: DatasetSpec, columns: list) -> Layout:
    """The entry's own columns, else the first known layout the data has."""
    if spec.text_column is not None or spec.label_column is not None:
        if spec.text_column is None or spec.label_column is None:
            raise ConfigError(f"dataset {spec.id!r}: give both text_column and label_column in params/datasets.yaml, "
                              f"or neither to read a known layout ({_known(spec.task)})")
        texts = (spec.text_column,) if isinstance(spec.text_column, (str, int)) else tuple(spec.text_column)
        return Layout("entry", texts, spec.label_column)
    for found in LAYOUTS[spec.task]:
        if found.prompt[0] in columns and found.target in columns:
            return found
    raise DataError(f"dataset {spec.id!r}: the data has columns {list(columns)}, none of the known {spec.task} "
                    f"layouts ({_known(spec.task)}); name its prompt and answer columns as text_column and "
                    f"label_column in params/datasets.yaml")


def _known(task: str) -> str:
    return "; ".join(f"{x.name}: {' / '.join(x.prompt)} -> {x.target}" for x in LAYOUTS[task])


def _schemas(spec: DatasetSpec, folder) -> dict[str, str]:
    """Spider's tables.json beside the data: every database's CREATE TABLE statements by db_id."""
    path = folder / spec.schema_file
    if not path.is_file():
        raise DataError(f"dataset {spec.id!r}: schema_file {path} not found; put Spider's tables.json beside the "
                        f"data or fix schema_file in params/datasets.yaml")
    return {db["db_id"]: render_schema(db) for db in read_json(path)}


def standardize(df: pd.DataFrame, spec: DatasetSpec, split: str, schemas: dict[str, str] | None,
                findings: list[Finding]) -> pd.DataFrame:
    """The rows of one source split as text, target (and schema, group): the module docstring's columns."""
    found = layout(spec, list(df.columns))
    required = [found.prompt[0], found.target, *([spec.schema_column] if spec.schema_column is not None else []),
                *([spec.group_column] if spec.group_column is not None else [])]
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise DataError(f"dataset {spec.id!r}, split {split!r}: missing column(s) {missing}; the data has "
                        f"{list(df.columns)}. Fix text_column / label_column / schema_column / group_column in "
                        f"params/datasets.yaml")
    parts = [df[c].fillna("").astype(str).str.strip() for c in found.prompt if c in df.columns]
    text = parts[0]
    for part in parts[1:]:
        text = text.where(part == "", text + "\n\n" + part)
    out = pd.DataFrame({"text": text, "target": df[found.target].fillna("").astype(str).str.strip()})
    if spec.task == "sql":
        out["target"] = out["target"].map(lambda q: " ".join(q.split()))
        if spec.schema_column is not None:
            out["schema"] = df[spec.schema_column].fillna("").astype(str)
        else:
            if "db_id" not in df.columns:
                raise DataError(f"dataset {spec.id!r}, split {split!r}: a schema_file is looked up by db_id, and the "
                                f"data has no db_id column; use schema_column for per-row schemas")
            unknown = sorted(set(df["db_id"]) - set(schemas))
            if unknown:
                raise DataError(f"dataset {spec.id!r}: databases {unknown[:5]} are not in {spec.schema_file}; give "
                                f"the tables.json that goes with the data")
            out["schema"] = df["db_id"].map(schemas)
    if spec.group_column is not None:
        out["group"] = df[spec.group_column].astype(str)
    empty = (out["text"] == "") | (out["target"] == "")
    if empty.any():
        findings.append(Finding("warning", "empty_text", split, int(empty.sum()),
                                "rows with an empty prompt or target were dropped"))
    return out.loc[~empty].reset_index(drop=True)


def load_task_frames(spec: DatasetSpec, data_dir: str | None = None) -> tuple[dict[str, pd.DataFrame], str, str,
                                                                              list[Finding]]:
    """The source's splits standardized (cached like the classification datasets'): frames, source,
    cache key, findings."""
    origin = _locate(spec, data_dir)
    folder = next(iter(origin.files.values())).parent if origin.files else None
    schema_path = folder / spec.schema_file if folder is not None and spec.schema_file else None
    key = cache.key({"base": _cache_key(spec, origin),
                     "schemas": cache.file_hash(schema_path) if schema_path and schema_path.is_file() else None})
    cached = cache.read(key)
    if cached is not None:
        frames, meta = cached
        return frames, meta["source"], key, [Finding(**f) for f in meta["findings"]]
    if spec.schema_file and folder is None:
        raise DataError(f"dataset {spec.id!r}: schema_file {spec.schema_file!r} is read beside the data files; the "
                        f"{spec.source!r} source has none, so use a mirror or file source, or a schema_column")
    schemas = _schemas(spec, folder) if spec.schema_file else None
    tables = _read_source(spec, origin)
    if "train" not in tables:
        raise DataError(f"dataset {spec.id!r}: the source has no train split (it has {sorted(tables)}); map one "
                        f"with 'splits' in params/datasets.yaml")
    findings: list[Finding] = []
    frames = {name: standardize(df, spec, name, schemas, findings) for name, (df, _) in tables.items()}
    if frames["train"].empty:
        raise DataError(f"dataset {spec.id!r}: no usable rows in the train split; check the source and the columns")
    cache.write(key, frames, {"dataset": spec.id, "source": origin.source,
                              "findings": [dataclasses.asdict(f) for f in findings]})
    return frames, origin.source, key, findings


def _cap(df: pd.DataFrame, n: int | None, seed: int) -> pd.DataFrame:
    return (df if n is None or len(df) <= n else df.sample(n=n, random_state=seed)).reset_index(drop=True)


def _carve(df: pd.DataFrame, n: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """n rows at random out of df: (the rest, the n rows)."""
    carved = df.sample(n=min(n, len(df)), random_state=seed)
    return df.drop(carved.index).reset_index(drop=True), carved.reset_index(drop=True)


def _carve_groups(df: pd.DataFrame, share: float, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Whole groups, in a seeded order, until they hold `share` of the rows: (the rest, those groups)."""
    groups = sorted(df["group"].unique())
    if len(groups) < 2:
        raise DataError(f"a split by group needs at least two groups, the data has {groups}")
    order = np.random.default_rng(seed).permutation(len(groups))
    sizes = df["group"].value_counts()
    taken, rows = [], 0
    for i in order:
        if rows >= share * len(df) or len(taken) == len(groups) - 1:
            break
        taken.append(groups[i])
        rows += int(sizes[groups[i]])
    held = df["group"].isin(taken)
    return df.loc[~held].reset_index(drop=True), df.loc[held].reset_index(drop=True)


def fingerprint(splits: DatasetSplits) -> str:
    """A hash of exactly the rows each split holds: every prompt part (text, schema) and the target."""
    from helpers.data.splits import fingerprint as split_fingerprint  # splits imports this module

    return split_fingerprint(splits, ("text", "schema", "target"))


def check_task_splits(splits: DatasetSplits, min_test_rows: int = MIN_TEST_ROWS) -> list[Finding]:
    """Empty or too small splits stop the study; repeated prompts, prompts of test also in train and
    (for a group split) the groups held out are reported."""
    findings = []
    for name in ("train", "validation", "test"):
        df = splits.split(name)
        if df.empty:
            raise DataError(f"dataset {splits.dataset!r}: split {name!r} is empty; lower the caps or check the source")
        dups = int(df.duplicated(["text", *(["schema"] if "schema" in df else [])]).sum())
        if dups:
            findings.append(Finding("warning", "duplicates", name, dups,
                                    f"repeated prompts within {name}; de-duplicate the source to count each once"))
    if len(splits.test) < min_test_rows:
        raise DataError(f"dataset {splits.dataset!r}: the test split has {len(splits.test)} row(s), fewer than the "
                        f"{min_test_rows} needed to judge a model; raise max_test in the preset or the study's "
                        f"overrides, or give the dataset more rows")
    leaked = int(splits.train["text"].isin(set(splits.test["text"])).sum())
    if leaked:
        findings.append(Finding("warning", "leakage", "train", leaked,
                                "train prompts that also appear in test; drop_leakage: true in the dataset entry "
                                "drops them"))
    if "group" in splits.test:
        held = sorted(splits.test["group"].unique())
        seen = sorted(set(held) & set(splits.train["group"]))
        findings.append(Finding("warning" if seen else "info", "held_out_groups", "test", len(held),
                                f"test groups {held}" + (f"; also in train: {seen}" if seen else
                                                         ", none of them in train or validation")))
    return findings


def load_task_splits(spec: DatasetSpec, preset: Preset, seed: int, data_dir: str | None = None,
                     min_test_rows: int = MIN_TEST_ROWS) -> DatasetSplits:
    """Load, standardize, split and cap a task dataset; same entry, preset and seed give the same rows."""
    frames, source, key, findings = load_task_frames(spec, data_dir)
    findings = list(findings)
    pool = frames["train"]
    if spec.holdout_group is not None:
        if "group" not in pool:
            raise DataError(f"dataset {spec.id!r} has no group_column to hold out {spec.holdout_group!r} from")
        pool = pd.concat(frames.values(), ignore_index=True)
        held = pool["group"] == spec.holdout_group
        train, test = pool.loc[~held].reset_index(drop=True), pool.loc[held].reset_index(drop=True)
        source = f"{source} holdout:{spec.holdout_group}"
    elif "test" in frames:
        train, test = pool, frames["test"]
    elif "group" in pool:
        train, test = _carve_groups(pool, TEST_SHARE, seed)
        source = f"{source} split by {spec.group_column}"
    else:
        train, test = _carve(pool, max(1, round(TEST_SHARE * len(pool))), seed)
    test = _cap(test, preset.max_test, seed)
    if spec.drop_leakage:
        leaked = train["text"].isin(set(test["text"]))
        if leaked.any():
            findings.append(Finding("info", "leakage_dropped", "train", int(leaked.sum()),
                                    "train rows whose prompt is in test were dropped (drop_leakage)"))
            train = train.loc[~leaked].reset_index(drop=True)
    if "validation" in frames and spec.holdout_group is None:
        validation = frames["validation"]
    else:
        train, validation = _carve(train, min(preset.max_validation or round(0.1 * len(train)), len(train) // 5 or 1),
                                   seed)
    splits = DatasetSplits(dataset=spec.id, labels=[], train=_cap(train, preset.max_train, seed),
                           validation=_cap(validation, preset.max_validation, seed), test=test, source=source,
                           calibration=pd.DataFrame({c: pd.Series(dtype=str) for c in ("text", "target")}),
                           cache_key=key)
    splits.findings = findings + check_task_splits(splits, min_test_rows) + long_texts(splits, preset.max_length)
    splits.fingerprint = fingerprint(splits)
    return splits


def token_counts(splits: DatasetSplits, count) -> dict[str, dict[str, np.ndarray]]:
    """Each split's prompt texts and targets in the model's tokens (`count(texts) -> lengths`)."""
    return {name: {"text": count(splits.split(name)["text"].tolist()),
                   "target": count(splits.split(name)["target"].tolist())}
            for name in ("train", "validation", "test")}


def data_record(splits: DatasetSplits, task: str, lengths: dict[str, dict[str, np.ndarray]], max_length: int,
                max_new_tokens: int) -> dict:
    """01_data's record of a task dataset: rows, groups, lengths, and what the caps cut."""
    record = {
        "dataset": splits.dataset, "task": task, "source": splits.source, "fingerprint": splits.fingerprint,
        "labels": [], "rows": {name: len(splits.split(name)) for name in SPLITS},
        "truncated_share": {name: float((counts["text"] > max_length).mean()) for name, counts in lengths.items()},
        "max_length": max_length,
        "target_tokens": {name: {"mean": float(counts["target"].mean()), "max": int(counts["target"].max())}
                          for name, counts in lengths.items()},
        "targets_over_max_new_tokens": {name: float((counts["target"] >= max_new_tokens).mean())
                                        for name, counts in lengths.items()},
        "max_new_tokens": max_new_tokens,
        "findings": [dataclasses.asdict(f) for f in splits.findings],
    }
    if "group" in splits.test:
        record["groups"] = {name: sorted(splits.split(name)["group"].unique()) for name in ("train", "validation",
                                                                                              "test")}
    return record


def prepare_task_data(run: Run) -> tuple[DatasetSplits, dict[str, dict[str, np.ndarray]]]:
    """01_data of a task dataset: split, check and save the rows every later stage uses; returns the
    splits and each prompt text's and target's length in the model's tokens."""
    from helpers.data.splits import save_splits  # splits.py reads task datasets through this module
    from helpers.train.models import load_tokenizer

    if run.model.method != "generate":
        raise ConfigError(f"dataset {run.dataset.id!r} is a task: {run.dataset.task} dataset, learned by writing its "
                          f"answers; model {run.model.id!r} classifies with a head. List a `method: generate` model "
                          f"of params/models.yaml in the study (e.g. smollm2-135m-sft)")
    splits = load_task_splits(run.dataset, run.preset, run.seed, run.data_dir)
    save_splits(splits, run.data_folder)
    tokenizer = load_tokenizer(run.model, run.preset.truncation_side)
    lengths = token_counts(splits, lambda texts: np.array([len(ids) for ids in tokenizer(
        texts, add_special_tokens=False)["input_ids"]]))
    run.write_stage("01_data", data_record(splits, run.dataset.task, lengths, run.preset.max_length,
                                           run.preset.generation.max_new_tokens))
    return splits, lengths


def summary(splits: DatasetSplits, lengths: dict[str, dict[str, np.ndarray]]) -> pd.DataFrame:
    """The top of a task's data card: rows, groups, and prompt text and target lengths in tokens per split."""
    rows = []
    for name, counts in lengths.items():
        df = splits.split(name)
        rows.append({"split": name, "rows": len(df), **({"groups": df["group"].nunique()} if "group" in df else {}),
                     "text tokens (mean)": round(float(counts["text"].mean()), 1),
                     "text tokens (max)": int(counts["text"].max()),
                     "target tokens (mean)": round(float(counts["target"].mean()), 1),
                     "target tokens (max)": int(counts["target"].max())})
    return pd.DataFrame(rows).set_index("split")
