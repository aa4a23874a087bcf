from __future__ import annotations

import json

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest
from matplotlib import pyplot as plt

from helpers.compare import ranking, seeds, views
from helpers.compare import runs as run_table
from helpers.compare.ranking import DEFAULT_WEIGHTS, mark_ties, normalize, rank_models
from helpers.evaluate import calibration, selective
from helpers.metrics import lower_is_better
from helpers.report import plots


@pytest.fixture
def results() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "model": ["A", "B", "C"],
            "accuracy": [0.9, 0.8, 0.7],
            "f1": [0.88, 0.80, 0.60],
            "throughput_samples_per_sec": [10.0, 30.0, 20.0],
            "throughput_tokens_per_sec": [1000.0, 3000.0, 2000.0],
            "latency_median_ms": [30.0, 10.0, 20.0],
            "peak_rss_mb": [900.0, 300.0, 600.0],
            "memory_allocated_mb": [np.nan, np.nan, np.nan],
            "baseline_accuracy": [0.5, 0.5, 0.5],
        }
    )


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def test_constants():
    assert sum(DEFAULT_WEIGHTS.values()) == pytest.approx(1.0)
    assert lower_is_better("latency_median_ms")
    assert not lower_is_better("accuracy")


def test_normalize_inverts_lower_is_better(results):
    normalized = normalize(results, ["accuracy", "latency_median_ms"])
    assert normalized["accuracy"].tolist() == pytest.approx([1.0, 0.5, 0.0])
    assert normalized["latency_median_ms"].tolist() == pytest.approx([0.0, 1.0, 0.5])


def test_normalize_constant_column_and_nan():
    df = pd.DataFrame({"accuracy": [0.7, 0.7, np.nan], "ece": [0.1, np.nan, 0.3]})
    normalized = normalize(df, ["accuracy", "ece"])
    assert normalized["accuracy"].tolist()[:2] == [1.0, 1.0]
    assert np.isnan(normalized["accuracy"].iloc[2])
    assert normalized["ece"].iloc[0] == pytest.approx(1.0)
    assert np.isnan(normalized["ece"].iloc[1])
    assert normalized["ece"].iloc[2] == pytest.approx(0.0)


def test_rank_models_hand_computed(results):
    # normalized accuracy A=1, B=.5, C=0; inverted latency A=0, B=1, C=.5; equal weights
    ranked = rank_models(results, {"accuracy": 2.0, "latency_median_ms": 2.0})
    assert ranked["model"].tolist() == ["B", "A", "C"]
    assert ranked["score"].tolist() == pytest.approx([0.75, 0.5, 0.25])
    assert ranked["rank"].tolist() == [1, 2, 3]
    assert ranked["rank"].dtype.kind == "i"
    assert ranked["norm_latency_median_ms"].tolist() == pytest.approx([1.0, 0.0, 0.5])
    assert "norm_f1" not in ranked.columns
    assert "score" not in results.columns


def test_rank_models_default_weights(results):
    # accuracy .3*[1,.5,0], f1 .3*[1,.7143,0], throughput .2*[0,1,.5], latency .2*[0,1,.5]
    ranked = rank_models(results).set_index("model")
    f1_b = (0.80 - 0.60) / (0.88 - 0.60)
    assert ranked.loc["A", "score"] == pytest.approx(0.6)
    assert ranked.loc["B", "score"] == pytest.approx(0.15 + 0.3 * f1_b + 0.4)
    assert ranked.loc["C", "score"] == pytest.approx(0.2)
    assert ranked["rank"].to_dict() == {"B": 1, "A": 2, "C": 3}


def test_rank_models_ties_and_nan(results):
    results.loc[2, "accuracy"] = np.nan
    ranked = rank_models(results, {"accuracy": 1.0}).set_index("model")
    assert ranked.loc["C", "score"] == 0.0
    results["accuracy"] = [0.8, 0.8, 0.7]
    ranked = rank_models(results, {"accuracy": 1.0})
    assert ranked["rank"].tolist() == [1, 1, 3]


def test_rank_models_rejects_unknown_column(results):
    with pytest.raises(ValueError, match="energy_j") as error:
        rank_models(results, {"accuracy": 1.0, "energy_j": 1.0})
    assert "latency_median_ms" in str(error.value)


def test_rank_models_rejects_bad_weights(results):
    with pytest.raises(ValueError, match="non-negative"):
        rank_models(results, {"accuracy": 1.0, "f1": -0.5})
    with pytest.raises(ValueError):
        rank_models(results, {"accuracy": 0.0})


def test_mark_ties_only_between_non_significant_neighbours(results):
    ranked = rank_models(results, {"accuracy": 1.0, "latency_median_ms": 1.0})  # B, A, C
    pairwise = pd.DataFrame(
        {
            "model_a": ["A", "A", "B"],
            "model_b": ["B", "C", "C"],
            "significant": [False, True, False],
        }
    )
    tied = mark_ties(ranked, pairwise).set_index("model")["tied_with"].to_dict()
    assert tied == {"B": "A", "A": "B", "C": ""}


def test_mark_ties_lists_both_neighbours(results):
    ranked = rank_models(results, {"accuracy": 1.0})  # A, B, C
    pairwise = pd.DataFrame({"model_a": ["B", "C"], "model_b": ["A", "B"], "significant": [False, False]})
    marked = mark_ties(ranked, pairwise)
    assert marked["tied_with"].tolist() == ["B", "A, C", "B"]
    assert mark_ties(ranked, pairwise.iloc[0:0])["tied_with"].tolist() == ["", "", ""]


def test_throughput_bars_plot(results):
    fig = plots.throughput_bars(results)
    (ax,) = fig.axes
    assert len(ax.patches) == 3
    assert ax.texts[1].get_text() == "30.0\n(3000 tok/s)"


def test_confusion_heatmap_plot():
    fig = plots.confusion_heatmap(np.array([[5, 1], [2, 7]]), ["neg", "pos"], title="model A")
    assert len(fig.axes) == 2  # heatmap and colorbar
    ax = fig.axes[0]
    assert [text.get_text() for text in ax.texts] == ["5", "1", "2", "7"]
    assert ax.get_title() == "model A"


def test_training_curves_plot():
    history = [
        {"loss": 0.9, "learning_rate": 1e-3, "step": 10},
        {"loss": 0.6, "learning_rate": 5e-4, "step": 20},
        {"train_runtime": 12.0, "train_loss": 0.75, "step": 20},
    ]
    fig = plots.training_curves(history)
    assert len(fig.axes) == 2
    loss, = fig.axes[0].lines
    assert loss.get_xdata().tolist() == [10, 20] and loss.get_ydata().tolist() == [0.9, 0.6]
    assert fig.axes[1].lines[0].get_ydata().tolist() == [1e-3, 5e-4]
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == ["train loss", "learning rate"]
    assert len(plots.training_curves([{"loss": 0.9, "step": 10}]).axes) == 1


def run_result(model: str, seed: int, accuracy: float, **quality) -> dict:
    """A results.json as the runs write it; `quality` adds the evaluation keys of newer runs."""
    return {
        "model_name": model, "seed": seed, "run": f"{model}-seed{seed}", "accuracy": accuracy, "f1": accuracy - 0.1,
        "latency_median_ms": 10.0, "throughput_samples_per_sec": 5.0, "trainable_params": 1000,
        "data_fingerprint": f"split{seed}",
        "quality": {"accuracy_ci95": [accuracy - 0.05, accuracy + 0.05], "f1_ci95": [0.5, 0.6],
                    "baseline_majority": {"accuracy": 0.5}, **quality},
    }


def per_group(worst: float, gap: float, group: str) -> dict:
    return {"min_group_size": 10, "groups": {"a": {"n": 20, "small": False}, "b": {"n": 20, "small": False},
                                             "c": {"n": 3, "small": True}},
            "small_groups": ["c"], "worst": {"accuracy": worst, "f1": worst - 0.1},
            "worst_group": {"accuracy": group, "f1": group}, "gap": {"accuracy": gap, "f1": gap}}


@pytest.fixture
def runs() -> pd.DataFrame:
    baseline = {"0-shot": {"accuracy": 0.55, "f1": 0.4, "ece": 0.2}, "4-shot": {"accuracy": 0.6, "f1": 0.5, "ece": 0.1}}
    return run_table.results_table([
        run_result("A", 1, 0.80, ece=0.10, conformal_set_size=1.2, selective_target_reached=True,
                   baseline=baseline, per_group=per_group(0.7, 0.1, "a"), vs_majority={"p_value": 0.04}),
        run_result("A", 2, 0.90, ece=0.20, conformal_set_size=1.4, selective_target_reached=False,
                   baseline=baseline, per_group=per_group(0.8, 0.2, "b"), vs_majority={"p_value": 0.001}),
        run_result("B", 1, 0.70, ece=0.05, conformal_set_size=1.6, selective_target_reached=True),
        run_result("B", 2, 0.74, ece=0.07, conformal_set_size=1.8, selective_target_reached=True),
        run_result("C", 1, 0.60),  # an older run: no evaluation keys at all
    ])


def test_results_table_reads_new_keys_and_tolerates_old_runs(runs):
    row = runs.set_index("run").loc["A-seed1"]
    assert row["ece"] == 0.10 and row["baseline_0-shot_accuracy"] == 0.55 and row["baseline_4-shot_ece"] == 0.1
    assert row["worst_accuracy"] == 0.7 and row["gap_f1"] == 0.1 and row["worst_group_accuracy"] == "a"
    assert row["groups_judged"] == 2 and row["groups_small"] == 1
    old = runs.set_index("run").loc["C-seed1"]
    assert pd.isna(old["ece"]) and pd.isna(old["baseline_0-shot_accuracy"]) and pd.isna(old["worst_accuracy"])
    assert old["baseline_accuracy"] == 0.5 and pd.isna(old["p_vs_majority"])
    assert row["p_vs_majority"] == 0.04


def test_aggregate_seeds_mean_and_std(runs):
    table = seeds.aggregate_seeds(runs).set_index("model")
    assert table.loc["A", "n_seeds"] == 2 and table.loc["A", "seeds"] == [1, 2]
    assert table.loc["A", "accuracy"] == pytest.approx(0.85)
    assert table.loc["A", "accuracy_std"] == pytest.approx(np.std([0.8, 0.9], ddof=1))
    assert table.loc["A", "ece"] == pytest.approx(0.15)
    assert table.loc["A", "selective_target_reached"] == pytest.approx(0.5)
    assert table.loc["A", "worst_group_accuracy"] == "a, b"
    assert table.loc["A", "accuracy_ci95"] is None  # intervals of single runs do not average
    assert np.isnan(table.loc["C", "accuracy_std"]) and table.loc["C", "accuracy_ci95"] == pytest.approx([0.55, 0.65])
    ranked = ranking.rank_models(table.reset_index(), {"accuracy": 1.0})
    assert ranked["model"].tolist() == ["A", "B", "C"]
    assert table.loc["A", "p_vs_majority"] == 0.04  # the weakest seed's, not a mean of p-values
    view = views.summary(ranked)
    assert view["seeds"].tolist() == [2, 2, 1] and view["accuracy seed std"].iloc[0] == pytest.approx(0.071)
    assert view["McNemar p vs majority (largest over seeds)"].iloc[0] == 0.04


def test_seed_differences_put_the_seed_spread_beside_the_difference(runs):
    table = seeds.seed_differences(runs[runs["model"] != "C"], "accuracy").iloc[0]
    assert (table["model_a"], table["model_b"]) == ("A", "B")
    assert table["difference"] == pytest.approx(0.85 - 0.72)
    assert table["seed_std_a"] == pytest.approx(np.std([0.8, 0.9], ddof=1))
    assert table["paired_difference_std"] == pytest.approx(np.std([0.10, 0.16], ddof=1))
    assert table["seeds"] == 2


def test_uncertainty_view_shows_mean_and_seed_std(runs):
    view = views.uncertainty_view(seeds.aggregate_seeds(runs))
    assert view.loc["A", "ECE"] == "0.150 ± 0.071"
    assert view.loc["C", "ECE"] == ""
    assert "AURC" not in view.columns  # no run recorded it
    assert view.loc["B", "set size (LAC)"] == "1.700 ± 0.141"


def test_uncertainty_view_empty_for_old_runs_only():
    old = run_table.results_table([run_result("C", 1, 0.6), run_result("D", 1, 0.7)])
    table = seeds.aggregate_seeds(old)
    assert views.uncertainty_view(table).empty
    assert views.baseline_view(table).empty
    assert views.group_view(table).empty
    assert table["trainable_params"].tolist() == [1000, 1000]


def test_baseline_view_base_against_fine_tuned(runs):
    view = views.baseline_view(seeds.aggregate_seeds(runs))
    assert list(view.columns[:3]) == ["accuracy 0-shot", "accuracy 4-shot", "accuracy fine-tuned"]
    assert view.loc["A", "accuracy 0-shot"] == "0.550 ± 0.000"
    assert view.loc["A", "accuracy fine-tuned"] == "0.850 ± 0.071"
    assert view.loc["B", "ECE 4-shot"] == "" and view.loc["B", "ECE fine-tuned"] == "0.060 ± 0.014"


def test_group_view_worst_group_and_gap(runs):
    view = views.group_view(seeds.aggregate_seeds(runs))
    assert view.loc["A", "worst group (accuracy)"] == "a, b"
    assert view.loc["A", "worst-group accuracy"] == "0.750 ± 0.071"
    assert view.loc["A", "accuracy gap"] == "0.150 ± 0.071"
    assert view.loc["B", "worst-group accuracy"] == ""


def write_run(folder, name: str, result: dict, labels: np.ndarray, probabilities: np.ndarray):
    run = folder / name
    run.mkdir(parents=True)
    (run / "results.json").write_text(json.dumps(result))
    frame = pd.DataFrame({"example": np.arange(len(labels)), "label": labels,
                          "prediction": probabilities.argmax(axis=1), "confidence": probabilities.max(axis=1),
                          "prob_neg": probabilities[:, 0], "prob_pos": probabilities[:, 1]})
    frame.iloc[::-1].to_csv(run / "predictions.csv", index=False)  # rows in any order


@pytest.fixture
def dataset_dir(tmp_path):
    labels = np.array([0, 1, 0, 1, 1, 0])
    right = np.array([[0.9, 0.1], [0.2, 0.8], [0.7, 0.3], [0.4, 0.6], [0.3, 0.7], [0.6, 0.4]])
    wrong = right[:, ::-1]
    for seed in (1, 2):
        write_run(tmp_path, f"A-seed{seed}", run_result("A", seed, 1.0), labels, right)
        write_run(tmp_path, f"B-seed{seed}", run_result("B", seed, 0.0), labels, wrong)
    (tmp_path / "C-seed1").mkdir()
    (tmp_path / "C-seed1" / "failed.json").write_text(json.dumps({"stage": "02_train", "error": "boom"}))
    return tmp_path


def test_runs_of_several_seeds_are_compared_per_seed(dataset_dir):
    results, failures = run_table.collect_runs(dataset_dir)
    assert [r["run"] for r in results] == ["A-seed1", "A-seed2", "B-seed1", "B-seed2"]
    assert failures[0]["run"] == "C-seed1"
    runs = run_table.results_table(results)
    pairwise = run_table.pairwise_by_seed(dataset_dir, runs)
    assert pairwise["seed"].tolist() == [1, 2]
    assert pairwise["a_only_correct"].tolist() == [6, 6] and pairwise["b_only_correct"].tolist() == [0, 0]
    assert pairwise["p_value"].tolist() == pytest.approx([2 * 0.5 ** 6] * 2)


def test_curves_read_from_predictions(dataset_dir):
    runs = run_table.results_table(run_table.collect_runs(dataset_dir)[0])
    reliability = run_table.reliability_curves(dataset_dir, runs, n_bins=10)
    assert set(reliability) == {"A", "B"}
    assert reliability["A"]["count"].sum() == 12  # both seeds pooled
    assert reliability["A"]["accuracy"].tolist() == [1.0] * 4
    assert reliability["B"]["accuracy"].tolist() == [0.0] * 4
    curves = run_table.risk_coverage_curves(dataset_dir, runs)
    assert curves["A"]["risk"].max() == 0.0 and curves["B"]["risk"].min() == 1.0
    y, p = run_table.run_probabilities(dataset_dir / "A-seed1")
    assert y.tolist() == [0, 1, 0, 1, 1, 0] and p[0].tolist() == [0.9, 0.1]


def test_ece_bins_come_from_the_runs():
    assert run_table.ece_bins([run_result("A", 1, 0.8, ece_bins=10)]) == 10
    assert run_table.ece_bins([run_result("A", 1, 0.8)]) == 15


def test_reliability_and_risk_coverage_plots():
    y = np.array([0, 1, 0, 1])
    p = np.array([[0.85, 0.15], [0.85, 0.15], [0.35, 0.65], [0.35, 0.65]])
    sure = np.tile([0.95, 0.05], (4, 1))  # 95 % confident, 75 % right
    curves = {"A": calibration.reliability(y, p, 10), "B": calibration.reliability(np.array([0, 0, 0, 1]), sure, 10)}
    fig = plots.reliability_diagrams(curves)
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in visible] == ["A (ECE 0.250)", "B (ECE 0.200)"]
    fig = plots.risk_coverage({"A": selective.risk_coverage(y, p)})
    (ax,) = fig.axes
    assert ax.get_legend().get_texts()[0].get_text() == f"A (AURC {selective.aurc(y, p):.3f})"
    assert ax.lines[0].get_xdata()[-1] == pytest.approx(1.0)


@pytest.mark.parametrize("files, stage", [
    ([], "not started"),
    (["01_data.ipynb"], "after 01_data"),
    (["01_data.ipynb", ".02_train.tmp.ipynb"], "02_train"),
    (["01_data.ipynb", "02_train.failed.ipynb"], "02_train"),
])
def test_a_run_the_study_did_not_finish_is_listed_with_the_stage_it_stopped_in(tmp_path, files, stage):
    dataset = tmp_path / "sst2"
    for name, content in {"stopped": None, "broken": {"stage": "03_evaluate", "error": "ValueError: x"}}.items():
        (dataset / name).mkdir(parents=True)
        (dataset / name / "params.yaml").write_text(f"model: {name}\n")
        if content:
            (dataset / name / "failed.json").write_text(json.dumps(content))
    (dataset / "notes").mkdir()  # not a planned run: no params.yaml
    for name in files:
        (dataset / "stopped" / name).write_text("{}")
    results, failures = run_table.collect_runs(dataset)
    assert results == []
    assert failures == [
        {"run": "broken", "status": "failed", "stage": "03_evaluate", "error": "ValueError: x"},
        {"run": "stopped", "status": "not finished", "stage": stage, "error": run_table.UNFINISHED_NOTE},
    ]
