from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest
from matplotlib import pyplot as plt
from matplotlib.figure import Figure

from helpers import plots
from helpers.comparison import DEFAULT_WEIGHTS, LOWER_IS_BETTER, mark_ties, normalize, rank_models


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
    assert "latency_median_ms" in LOWER_IS_BETTER
    assert "accuracy" not in LOWER_IS_BETTER


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


def test_accuracy_vs_latency_plot(results):
    fig = plots.accuracy_vs_latency(results)
    assert isinstance(fig, Figure)
    (ax,) = fig.axes
    sizes = ax.collections[0].get_sizes()
    assert sizes[0] / sizes[1] == pytest.approx(3.0)  # peak_rss_mb used since memory_allocated_mb is empty
    assert [text.get_text() for text in ax.texts] == ["A", "B", "C"]
    assert ax.get_legend().get_texts()[0].get_text() == "majority baseline"
    assert ax.lines[0].get_ydata()[0] == pytest.approx(0.5)


def test_accuracy_vs_latency_prefers_allocated_memory(results):
    results["memory_allocated_mb"] = [100.0, 400.0, 200.0]
    fig = plots.accuracy_vs_latency(results.drop(columns="baseline_accuracy"))
    (ax,) = fig.axes
    sizes = ax.collections[0].get_sizes()
    assert sizes[1] / sizes[0] == pytest.approx(4.0)
    assert ax.get_legend() is None


def test_radar_plot(results):
    fig = plots.radar(results, ["accuracy", "f1", "latency_median_ms"])
    (ax,) = fig.axes
    assert ax.name == "polar"
    assert len(ax.lines) == 3
    assert [text.get_text() for text in ax.get_legend().get_texts()] == ["A", "B", "C"]


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
        {"loss": 0.9, "step": 10},
        {"loss": 0.6, "step": 20},
        {"eval_loss": 0.7, "eval_accuracy": 0.8, "step": 20},
        {"train_runtime": 12.0, "step": 20},
    ]
    fig = plots.training_curves(history)
    assert len(fig.axes) == 2
    assert len(fig.axes[0].lines) == 2
    assert fig.axes[1].lines[0].get_ydata().tolist() == [0.8]
    assert len(plots.training_curves(history[:2]).axes) == 1
