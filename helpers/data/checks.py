"""The checks that need all splits at once; errors stop the study before any training."""
from __future__ import annotations

from helpers.data.records import SPLITS, DataError, DatasetSplits, Finding

# Fewer test rows judge nothing: one row gives accuracy 0 or 1 with a CI of [0, 0] or [1, 1], and
# each row moves the accuracy by 10 points at this size already.
MIN_TEST_ROWS = 10


def check_splits(splits: DatasetSplits, min_test_rows: int = MIN_TEST_ROWS) -> list[Finding]:
    """The checks that need all splits at once; errors stop the study before training. The bench,
    which judges no model on its test rows, lowers `min_test_rows`."""
    findings = []
    for name in SPLITS:
        df = splits.split(name)
        if df.empty:
            raise DataError(f"dataset {splits.dataset!r}: split {name!r} is empty; lower the caps or check the source")
        if name == "test" and len(df) < min_test_rows:
            raise DataError(f"dataset {splits.dataset!r}: the test split has {len(df)} row(s), fewer than the "
                            f"{min_test_rows} needed to judge a model; raise max_test in the preset or the study's "
                            f"overrides, or give the dataset more rows")
        if splits.label_type != "single":
            findings.extend(_label_findings(splits, name, df))
        elif df["label"].nunique() < 2:
            label = splits.labels[int(df["label"].iloc[0])]
            findings.append(Finding(
                "error" if name == "train" else "warning", "single_class", name, len(df),
                f"only one class ({label}) in {name}: check label_column and label_map in params/datasets.yaml, "
                f"or raise the preset's caps"))
        dups = int(df["text"].duplicated().sum())
        if dups:
            findings.append(Finding("warning", "duplicates", name, dups,
                                    f"repeated texts within {name}; de-duplicate the source to count each once"))
    test_texts = set(splits.test["text"])
    for name in ("train", "validation", "calibration"):
        leaked = int(splits.split(name)["text"].isin(test_texts).sum())
        if leaked:
            findings.append(Finding(
                "warning", "leakage", name, leaked,
                f"{name} texts that also appear in test; drop_leakage: true in the dataset entry drops them "
                f"from train before validation and calibration are carved from it"))
    errors = [f for f in findings if f.level == "error"]
    if errors:
        raise DataError(f"dataset {splits.dataset!r}: " + "; ".join(f.message for f in errors))
    return findings


def _label_findings(splits: DatasetSplits, name: str, df) -> list[Finding]:
    """A multi-label split without some label (an error in train: that label cannot be learnt), or a
    regression target that does not vary (an error in train: nothing to learn)."""
    if splits.label_type == "multi":
        seen = {i for ids in df["label"] for i in ids}
        missing = [label for i, label in enumerate(splits.labels) if i not in seen]
        if not missing:
            return []
        level = "error" if name == "train" and len(missing) == len(splits.labels) else "warning"
        return [Finding(level, "missing_labels", name, len(missing),
                        f"labels with no text in {name}: {missing[:10]}; raise the preset's caps or group rare labels "
                        f"with label_map")]
    constant = [t for t, column in zip(splits.labels, zip(*df["label"]), strict=True) if len(set(column)) < 2]
    if not constant:
        return []
    return [Finding("error" if name == "train" else "warning", "constant_target", name, len(df),
                    f"targets {constant} do not vary in {name}: check label_column in params/datasets.yaml")]


def long_texts(splits: DatasetSplits, max_length: int) -> list[Finding]:
    """Texts with more words than max_length are truncated by any tokenizer (a word is at least
    one token): a lower bound found before any tokenizer loads; 01_data reports each model's share."""
    findings = []
    for name in SPLITS:
        longer = int((splits.split(name)["text"].str.split().str.len() > max_length).sum())
        if longer:
            findings.append(Finding(
                "warning", "truncated", name, longer,
                f"texts of more than {max_length} words, so cut at max_length (at least these); raise "
                f"max_length in the preset or the study's overrides to keep them whole"))
    return findings
