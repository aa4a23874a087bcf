"""Several seeds per model: one row per model (mean and seed std), and every difference between
models set beside the seed-to-seed spread."""
from __future__ import annotations

import pandas as pd

from helpers.compare.runs import RUN_COLUMNS

# A mean of p-values is no p-value: over seeds the report shows the weakest seed's.
LARGEST_OVER_SEEDS = {"p_vs_majority"}


def aggregate_seeds(table: pd.DataFrame) -> pd.DataFrame:
    """One row per model: every numeric column averaged over its seeds with `<column>_std` the seed
    standard deviation (NaN with one seed), p-values the largest over seeds; other columns kept
    where the seeds agree."""
    rows = []
    for model, runs in table.groupby("model", sort=False):
        row = {"model": model, "n_seeds": len(runs), "seeds": sorted(runs["seed"].dropna().tolist())}
        for column in table.columns.drop(RUN_COLUMNS):
            values = runs[column]
            if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
                row[column] = values.max() if column in LARGEST_OVER_SEEDS else values.mean()
                row[f"{column}_std"] = values.std(ddof=1)
            elif len(runs) == 1:
                row[column] = values.iloc[0]
            else:
                present = values.dropna().tolist()
                strings = present and all(isinstance(v, str) for v in present)
                row[column] = ", ".join(sorted(set(present))) if strings else None
        rows.append(row)
    return pd.DataFrame(rows)


def seed_differences(table: pd.DataFrame, metric: str = "accuracy") -> pd.DataFrame:
    """Every pair of models: the difference of their seed means next to each one's seed std and
    the std of the per-seed paired difference; a difference within the seed noise is not a finding."""
    wide = table.pivot_table(index="seed", columns="model", values=metric, aggfunc="mean")
    rows = []
    models = list(dict.fromkeys(table["model"]))
    for i, a in enumerate(models):
        for b in models[i + 1:]:
            paired = (wide[a] - wide[b]).dropna()
            rows.append({"model_a": a, "model_b": b, "metric": metric,
                         "difference": wide[a].mean() - wide[b].mean(),
                         "seed_std_a": wide[a].std(ddof=1), "seed_std_b": wide[b].std(ddof=1),
                         "paired_difference_std": paired.std(ddof=1), "seeds": len(paired)})
    return pd.DataFrame(rows, columns=["model_a", "model_b", "metric", "difference", "seed_std_a", "seed_std_b",
                                       "paired_difference_std", "seeds"])
