"""05_compare: every model of a study on one dataset, ranked and tested against each other.
The notebook shows what this computes; it writes `comparison.json` and `pairwise.csv`."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from helpers.compare import ranking, seeds
from helpers.compare import runs as run_table
from helpers.core.io import atomic_write_text, write_json


@dataclass
class Comparison:
    folder: Path  # the dataset's folder of run folders
    results: list[dict]  # each finished run's results.json
    failures: list[dict]  # each failed run's failed.json
    runs: pd.DataFrame  # one row per run
    table: pd.DataFrame  # one row per model, means over its seeds
    pairwise: pd.DataFrame  # exact McNemar per seed, Holm-corrected
    ranked: pd.DataFrame  # table ranked by the weighted score, neighbours McNemar cannot tell apart marked

    @property
    def several_seeds(self) -> bool:
        return bool(len(self.table)) and self.table["n_seeds"].max() > 1

    def seed_differences(self, metric: str) -> pd.DataFrame:
        """Every pair of models' difference in `metric` beside their seed-to-seed spread."""
        return seeds.seed_differences(self.runs, metric)

    def reliability_curves(self) -> dict[str, pd.DataFrame]:
        """Reliability-diagram data per model, in the runs' own ECE bins, every seed's test predictions pooled."""
        return run_table.reliability_curves(self.folder, self.runs, run_table.ece_bins(self.results)) if len(
            self.runs) else {}

    def risk_coverage_curves(self) -> dict[str, pd.DataFrame]:
        """Risk-coverage curve per model, every seed's test predictions pooled."""
        return run_table.risk_coverage_curves(self.folder, self.runs) if len(self.runs) else {}


def compare_dataset(folder: str | Path, weights: dict[str, float] | None = None) -> Comparison:
    """Read every run under `folder`, average seeds, test every pair, rank, and write
    comparison.json (ranking, runs, pairwise tests, failures) and pairwise.csv beside the runs."""
    folder = Path(folder)
    results, failures = run_table.collect_runs(folder)
    runs = run_table.results_table(results)
    table = seeds.aggregate_seeds(runs) if len(runs) else runs
    label_type = run_table.label_type_of(runs) if len(runs) else "single"
    labels = results[0].get("quality", {}).get("labels") if results else None
    pairwise = run_table.pairwise_by_seed(folder, runs, labels) if len(runs) else pd.DataFrame()
    ranked = ranking.rank_models(table, weights or ranking.default_weights(label_type)) if len(table) else table
    if len(pairwise):
        ranked = ranking.mark_ties(ranked, pairwise)
    write_json(folder / "comparison.json", {"ranking": ranked.to_dict(orient="records"),
                                            "runs": runs.to_dict(orient="records"),
                                            "pairwise": pairwise.to_dict(orient="records"), "failures": failures})
    if len(pairwise):
        atomic_write_text(folder / "pairwise.csv", pairwise.to_csv(index=False))
    return Comparison(folder, results, failures, runs, table, pairwise, ranked)
