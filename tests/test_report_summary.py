"""Page one of the report: the verdict is made from the numbers, the ranking fits the page, the
headline figure shows CIs in the same colour per model everywhere."""
from __future__ import annotations

import pandas as pd
import pytest

from helpers.report import plots, summary


def ranking(**changes) -> pd.DataFrame:
    rows = {
        "model": ["big", "small", "tiny"], "rank": [1, 2, 3], "score": [0.9, 0.5, 0.1],
        "accuracy": [0.91, 0.86, 0.80], "accuracy_ci95": [[0.89, 0.93], [0.83, 0.89], [0.77, 0.83]],
        "f1": [0.90, 0.85, 0.79], "f1_ci95": [[0.88, 0.92], [0.82, 0.88], [0.76, 0.82]],
        "baseline_accuracy": [0.5, 0.5, 0.5], "p_vs_majority": [1e-40, 1e-30, 1e-20],
        "tied_with": ["", "", ""], "latency_median_ms": [120.0, 30.0, 10.0],
        "throughput_samples_per_sec": [8.0, 33.0, 100.0], "training_time_hours": [0.5, 0.1, 0.005],
        "trainable_params": [1_000_000, 300_000, 50_000], "n_seeds": [1, 1, 1],
    }
    rows.update(changes)
    return pd.DataFrame(rows)


def pairwise(significant: bool, p: float) -> pd.DataFrame:
    return pd.DataFrame([{"seed": 1, "model_a": "small", "model_b": "big", "a_only_correct": 10,
                          "b_only_correct": 60, "p_value": p, "p_holm": p, "significant": significant}])


def test_the_verdict_names_the_best_its_margin_the_test_the_fastest_and_the_cheapest():
    text = summary.verdict(summary.DatasetSummary("sst2", ranking(), pairwise(True, 1e-9), [], 1821))
    assert text.startswith("On sst2, big is the most accurate: 0.910 (0.890–0.930) on 1821 test examples.")
    assert "5.0 points ahead of small (0.860 (0.830–0.890)); exact McNemar p = 1e-09" in text
    assert "a significant difference" in text and "not a significant" not in text
    assert "big beats it significantly (exact McNemar p = 1e-40)" in text
    assert "The fastest is tiny (10 ms median latency, 12.0× faster than big)" in text
    assert "the cheapest to train is tiny (18 s, 50,000 trainable parameters)" in text


def test_the_verdict_says_when_the_test_cannot_tell_the_best_two_apart():
    table = ranking(accuracy=[0.86, 0.86, 0.80], p_vs_majority=[0.3, 0.4, 0.5])
    text = summary.verdict(summary.DatasetSummary("finefoods", table, pairwise(False, 0.86), [], 200))
    assert "It ties with small on accuracy" in text and "not a significant difference at α = 0.05" in text
    assert "big is not significantly better (exact McNemar p = 0.3)" in text


def test_the_verdict_counts_significant_seeds_and_failures():
    tests = pd.concat([pairwise(True, 0.001), pairwise(False, 0.2).assign(seed=2)])
    failures = [{"run": "huge", "stage": "01_data"}]
    text = summary.verdict(summary.DatasetSummary("imdb", ranking(n_seeds=[2, 2, 2]), tests, failures, None))
    assert "mean of 2 seeds" in text and "significant in 1 of 2 seeds" in text
    assert "1 run(s) failed: huge in 01_data." in text
    assert summary.verdict(summary.DatasetSummary("x", pd.DataFrame(), pd.DataFrame(), [], None)).startswith(
        "No model finished on x")


def test_the_verdict_says_base_against_fine_tuned_plainly_either_way():
    table = ranking(model=["sql-ft", "math-ft", "head"], base_accuracy=[0.10, 0.08, None],
                    p_vs_base=[0.0093, 0.25, None], accuracy=[0.212, 0.02, 0.01])
    text = summary.verdict(summary.DatasetSummary("spider", table, pairwise(False, 0.5), [], 80))
    assert ("Fine-tuned, sql-ft is 11.2 points ahead of its base model on the same test prompts "
            "(0.212 against 0.100; exact McNemar p = 0.0093: a significant difference).") in text
    assert "math-ft is 6.0 points behind its base model" in text and "p = 0.25: not significant at α = 0.05" in text
    assert "head is" not in text  # a model without a base-model comparison says nothing
    seeds = summary.verdict(summary.DatasetSummary("spider", table.assign(n_seeds=3), pairwise(False, 0.5), [], 80))
    assert "(0.212 against 0.100; mean of 3 seeds)" in seeds
    alone = summary.verdict(summary.DatasetSummary("spider", table.head(1), pd.DataFrame(), [], 80))
    assert alone.startswith("On spider, sql-ft (the only model) scores 0.212 (0.890–0.930) on 80 test examples.")
    assert alone.endswith("sql-ft answers in 120 ms (median latency); it trained in 30.0 min, 1,000,000 trainable "
                          "parameters.") and "fastest" not in alone


def test_page_one_reads_the_test_size_from_the_runs(tmp_path):
    from helpers.compare.runs import results_table
    from helpers.core.io import write_json
    table = results_table([{"model_name": "m", "seed": 1, "accuracy": 0.5, "quality": {"test_examples": 80}}])
    (tmp_path / "spider").mkdir()
    write_json(tmp_path / "spider" / "comparison.json",
               {"ranking": [], "pairwise": [], "runs": table.to_dict("records")})
    assert summary.load_summary(tmp_path, "spider").test_examples == 80


def test_the_ranking_table_is_narrow_and_reads_like_a_paper():
    table = summary.ranking_table([summary.DatasetSummary("sst2", ranking(), pairwise(True, 0.01), [], 100)])
    assert list(table.columns) == ["model", "score", "accuracy (95 % CI)", "macro F1 (95 % CI)", "p vs majority",
                                   "not significantly different from", "latency median (ms)",
                                   "throughput (samples/s)", "training", "trainable parameters"]
    assert table.loc[1, "accuracy (95 % CI)"] == "0.910 (0.890–0.930)"
    assert table.loc[1, "trainable parameters"] == "1,000,000" and table.loc[1, "p vs majority"] == "1e-40"
    assert list(table["training"]) == ["30.0 min", "6.0 min", "18 s"]


def test_several_datasets_share_one_ranking_table():
    both = [summary.DatasetSummary(name, ranking(), pairwise(True, 0.01), [], 100) for name in ("sst2", "imdb")]
    table = summary.ranking_table(both)
    assert table.index.names == ["dataset", "rank"] and len(table) == 6
    assert table.loc[("imdb", 3), "model"] == "tiny"


def test_the_headline_figure_draws_each_model_with_its_ci_in_its_own_colour():
    first = summary.DatasetSummary("a", ranking(), pairwise(True, 0.01), [], 100)
    second = summary.DatasetSummary("b", ranking().iloc[::-1].reset_index(drop=True), pairwise(True, 0.01), [], 100)
    fig = summary.headline_figure([first, second])
    colors = plots.model_colors(["big", "small", "tiny"])
    for ax in fig.axes:
        drawn = {bar.get_label(): bar.lines[0].get_color() for bar in ax.containers}  # one error bar per model
        assert drawn == {name: pytest.approx(colors[name]) for name in colors}
        assert ax.get_xscale() == "log" and "latency median (ms)" in ax.get_xlabel()
    assert summary.headline_figure([summary.DatasetSummary("c", pd.DataFrame(), pd.DataFrame(), [], None)]) is None


def test_durations_read_as_a_person_says_them():
    assert [summary.duration(s) for s in (26, 252, 5400)] == ["26 s", "4.2 min", "1.5 h"]


def test_page_one_names_each_commit_and_machine_a_study_was_made_with():
    """A study finished in two sessions (one dataset per device call) says which runs came from where."""
    from helpers.config import Study

    def result(dataset: str, commit: str, gpu: str) -> dict:
        return {"dataset": dataset, "environment": {"git": {"commit": commit, "dirty": False}, "gpu": gpu,
                                                    "cpu_count": 16, "memory_gb": 125.9, "device": "cuda"}}

    study = Study(name="s", models=["m"], datasets=["a", "b"], preset="quick", seeds=[1])
    one = summary.study_facts(study, [result("a", "c" * 40, "H200"), result("b", "c" * 40, "H200")])
    assert one["commit"] == "c" * 12 and one["hardware"] == "H200, 16 CPUs, 125.9 GB, device cuda"
    two = summary.study_facts(study, [result("a", "c" * 40, "H200"), result("a", "c" * 40, "H200"),
                                      result("b", "d" * 40, "H100")])
    assert two["commit"] == f"{'c' * 12} (a); {'d' * 12} (b)"
    assert two["hardware"] == "H200, 16 CPUs, 125.9 GB, device cuda (a); H100, 16 CPUs, 125.9 GB, device cuda (b)"
