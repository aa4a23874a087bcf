"""Page one of a study's report: what was compared, a verdict in words made from the numbers, the
ranking table and one headline figure.

Everything is read from each dataset's `comparison.json` (what 05_compare computed) and the runs'
`results.json`, so page one says exactly what the sections after it show. Accuracy is the main
metric of the verdict; "significantly" means the exact McNemar test on the shared test examples,
Holm-corrected over the study's pairs, at alpha = 0.05.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from matplotlib import pyplot as plt
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from helpers.compare.runs import FAILED, UNFINISHED, stopped_where
from helpers.config import Study
from helpers.core.io import read_json
from helpers.compare import views
from helpers.metrics import BASELINE_METRIC, MAIN_METRIC, SECOND_METRIC, lower_is_better, metric, title
from helpers.report.plots import model_colors

ALPHA = 0.05


@dataclass
class DatasetSummary:
    dataset: str
    ranking: pd.DataFrame  # one row per model, as ranked by 05_compare
    pairwise: pd.DataFrame  # exact McNemar per seed and pair
    failures: list[dict]
    test_examples: int | None


def load_summary(study_dir: Path, dataset: str) -> DatasetSummary | None:
    """The dataset's comparison, or None where 05_compare has not written one."""
    path = study_dir / dataset / "comparison.json"
    if not path.is_file():
        return None
    found = read_json(path)
    runs = found.get("runs") or [{}]
    sizes = [r.get("test_examples") for r in runs if r.get("test_examples")]
    return DatasetSummary(dataset, pd.DataFrame(found["ranking"]), pd.DataFrame(found["pairwise"]),
                          found.get("failures", []), sizes[0] if sizes else None)


def interval(value: float, pair: list | None, digits: int = 3) -> str:
    """'0.765 (0.705–0.820)': a number with its 95 % CI."""
    if value is None or pd.isna(value):
        return ""
    text = f"{value:.{digits}f}"
    return text + (f" ({pair[0]:.{digits}f}–{pair[1]:.{digits}f})" if isinstance(pair, (list, tuple)) else "")


def duration(seconds: float) -> str:
    """'26 s', '4.2 min' or '1.5 h', as a reader takes a training time in."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.1f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


def _p(value: float) -> str:
    return f"{value:.2g}" if value is not None and pd.notna(value) else "–"


def _pair_tests(pairwise: pd.DataFrame, a: str, b: str) -> pd.DataFrame:
    if pairwise.empty:
        return pairwise
    mask = ((pairwise["model_a"] == a) & (pairwise["model_b"] == b)) | ((pairwise["model_a"] == b) & (pairwise["model_b"] == a))
    return pairwise[mask]


def _judged(tests: pd.DataFrame, test: str) -> str:
    """What the paired test between two models found: its p with one seed, how many seeds with several."""
    if tests.empty:
        return "no paired test was possible"
    if len(tests) > 1:
        return f"significant in {int(tests['significant'].sum())} of {len(tests)} seeds ({test}, Holm)"
    row = tests.iloc[0]
    return (f"{test} p = {_p(row['p_value'])}, Holm-corrected {_p(row['p_holm'])}: "
            + ("a significant difference" if row["significant"] else f"not a significant difference at α = {ALPHA}"))


def verdict(summary: DatasetSummary) -> str:
    """Three to four sentences: the most accurate model with its CI, its margin over the runner-up
    and whether McNemar tells them apart, its margin over the majority class, base against
    fine-tuned where a run's base model answered the same prompts, the fastest and the cheapest
    to train."""
    ranking = summary.ranking
    if ranking.empty:
        return " ".join([f"No model finished on {summary.dataset}: nothing to compare.", *_failure_sentences(summary)])
    kind = views.label_type(ranking)
    if kind != "single":
        sentences, best = _label_type_verdict(summary, kind)
    else:
        by_accuracy = ranking.sort_values(["accuracy", "rank"], ascending=[False, True]).reset_index(drop=True)
        best = by_accuracy.iloc[0]
        sentences = _accuracy_sentences(summary, by_accuracy) + _base_sentences(by_accuracy)
    alone = len(ranking) == 1  # its speed and cost, with no "fastest" among one
    speed = []
    if ranking["latency_median_ms"].notna().any() and alone:
        speed.append(f"{best['model']} answers in {best['latency_median_ms']:.0f} ms (median latency)")
    elif ranking["latency_median_ms"].notna().any():
        fastest = ranking.loc[ranking["latency_median_ms"].idxmin()]
        factor = best["latency_median_ms"] / fastest["latency_median_ms"]
        speed.append(f"the fastest is {fastest['model']} ({fastest['latency_median_ms']:.0f} ms median latency"
                     + (f", {factor:.1f}× faster than {best['model']})" if fastest["model"] != best["model"] else ")"))
    if ranking["training_time_hours"].notna().any():
        cheapest = ranking.loc[ranking["training_time_hours"].idxmin()]
        cost = (f"{duration(3600 * cheapest['training_time_hours'])}, "
                f"{int(cheapest['trainable_params']):,} trainable parameters")
        speed.append(f"it trained in {cost}" if alone else f"the cheapest to train is {cheapest['model']} ({cost})")
    if speed:
        text = "; ".join(speed)
        sentences.append((text if alone else text[0].upper() + text[1:]) + ".")  # a model's name keeps its case
    sentences += _failure_sentences(summary)
    return " ".join(sentences)


def _accuracy_sentences(summary: DatasetSummary, by_accuracy: pd.DataFrame) -> list[str]:
    """The most accurate model with its CI, its margin over the runner-up with McNemar, and its
    margin over the majority class."""
    best = by_accuracy.iloc[0]
    examples = f" on {summary.test_examples} test examples" if summary.test_examples else ""
    seeds = int(best.get("n_seeds", 1) or 1)
    said = "is the most accurate:" if len(by_accuracy) > 1 else "(the only model) scores"
    sentences = [f"On {summary.dataset}, {best['model']} {said} "
                 f"{interval(best['accuracy'], best.get('accuracy_ci95'))}{examples}"
                 + (f", mean of {seeds} seeds" if seeds > 1 else "") + "."]
    if len(by_accuracy) > 1:
        second = by_accuracy.iloc[1]
        judged = _judged(_pair_tests(summary.pairwise, best["model"], second["model"]), "exact McNemar")
        margin = 100 * (best["accuracy"] - second["accuracy"])
        lead = (f"It ties with {second['model']} on accuracy" if abs(margin) < 0.05 else
                f"It is {margin:.1f} points ahead of {second['model']}")
        sentences.append(f"{lead} ({interval(second['accuracy'], second.get('accuracy_ci95'))}); {judged}.")
    if pd.notna(best.get("baseline_accuracy")) and pd.notna(best.get("p_vs_majority")):
        significant = best["p_vs_majority"] < ALPHA
        sentences.append(f"Always answering the majority class scores {best['baseline_accuracy']:.3f}; {best['model']} "
                         + ("beats it significantly" if significant else "is not significantly better")
                         + f" (exact McNemar p = {_p(best['p_vs_majority'])}).")
    return sentences


def _base_sentences(by_accuracy: pd.DataFrame) -> list[str]:
    """Base against fine-tuned, for every model whose base model answered the same test prompts (a
    task run: instruction or SQL): the margin on accuracy and the exact McNemar between the two;
    said as plainly when the fine-tuned model is not ahead."""
    sentences = []
    for _, row in by_accuracy.iterrows():
        if pd.isna(row.get("base_accuracy")) or pd.isna(row.get("p_vs_base")):
            continue
        seeds = int(row.get("n_seeds", 1) or 1)
        margin = 100 * (row["accuracy"] - row["base_accuracy"])
        said = ("level with" if abs(margin) < 0.05
                else f"{abs(margin):.1f} points " + ("ahead of" if margin > 0 else "behind"))
        test = (f"exact McNemar p = {_p(row['p_vs_base'])}: "
                + ("a significant difference" if row["p_vs_base"] < ALPHA else f"not significant at α = {ALPHA}")
                if seeds == 1 else f"mean of {seeds} seeds")
        sentences.append(f"Fine-tuned, {row['model']} is {said} its base model on the same test prompts "
                         f"({row['accuracy']:.3f} against {row['base_accuracy']:.3f}; {test}).")
    return sentences


def _label_type_verdict(summary: DatasetSummary, kind: str) -> tuple[list[str], pd.Series]:
    """A multi-label or regression comparison: the best model by its main metric (micro-F1, MAE) with
    its CI, its margin over the runner-up with the paired bootstrap, and the trivial baseline; and
    the best model's row."""
    key, baseline = MAIN_METRIC[kind], BASELINE_METRIC[kind]
    label = metric(key).label
    ranked = summary.ranking.sort_values([key, "rank"], ascending=[lower_is_better(key), True]).reset_index(drop=True)
    best = ranked.iloc[0]
    examples = f" on {summary.test_examples} test texts" if summary.test_examples else ""
    sentences = [f"On {summary.dataset}, {best['model']} has the best {label}: "
                 f"{interval(best[key], best.get(f'{key}_ci95'))}{examples}."]
    if len(ranked) > 1:
        second = ranked.iloc[1]
        judged = _judged(_pair_tests(summary.pairwise, best["model"], second["model"]), "paired bootstrap")
        sentences.append(f"Next is {second['model']} ({interval(second[key], second.get(f'{key}_ci95'))}); {judged}.")
    if pd.notna(best.get(baseline)):
        sentences.append(f"The better trivial baseline scores {best[baseline]:.3f} {label}.")
    return sentences, best


def _failure_sentences(summary: DatasetSummary) -> list[str]:
    """`N run(s) failed: <run> in <stage>, ...` and `N run(s) not finished: <run> (after <stage>), ...`."""
    sentences = []
    failed = [f for f in summary.failures if f.get("status", FAILED) == FAILED]  # older comparisons have no status
    if failed:
        sentences.append(f"{len(failed)} run(s) failed: "
                         + ", ".join(f"{f['run']} in {f.get('stage', '?')}" for f in failed) + ".")
    pending = [f for f in summary.failures if f.get("status") == UNFINISHED]
    if pending:
        sentences.append(f"{len(pending)} run(s) not finished: "
                         + ", ".join(f"{f['run']} ({stopped_where(f['stage'])})" for f in pending) + ".")
    return sentences


def ranking_table(summaries: list[DatasetSummary]) -> pd.DataFrame:
    """Every dataset's ranking in one table narrow enough for the page: quality with CIs, the test
    against the majority class, the neighbours McNemar cannot tell apart, speed and cost."""
    frames = []
    for found in summaries:
        ranking = found.ranking
        if ranking.empty:
            continue
        kind = views.label_type(ranking)
        columns = {"dataset": found.dataset, "rank": ranking["rank"], "model": ranking["model"],
                   "score": ranking["score"].round(3)}
        if kind == "single":
            columns.update({
                "accuracy (95 % CI)": [interval(v, ci) for v, ci in zip(ranking["accuracy"], ranking["accuracy_ci95"])],
                "macro F1 (95 % CI)": [interval(v, ci) for v, ci in zip(ranking["f1"], ranking["f1_ci95"])],
                "p vs majority": ranking["p_vs_majority"].map(_p)})
        else:  # multi-label or regression: its two headline metrics
            for key in (MAIN_METRIC[kind], SECOND_METRIC[kind]):
                columns[f"{metric(key).label} (95 % CI)"] = [interval(v, ci) for v, ci in
                                                             zip(ranking[key], ranking[f"{key}_ci95"])]
        columns["not significantly different from"] = ranking.get("tied_with", pd.Series("", index=ranking.index))
        for key in ("latency_median_ms", "throughput_samples_per_sec"):
            columns[title(key)] = pd.to_numeric(ranking[key], errors="coerce").round(metric(key).digits)
        columns["training"] = pd.to_numeric(ranking["training_time_hours"], errors="coerce").map(
            lambda hours: duration(3600 * hours) if pd.notna(hours) else "")
        columns[title("trainable_params")] = pd.to_numeric(ranking["trainable_params"], errors="coerce").map(
            lambda n: f"{int(n):,}" if pd.notna(n) else "")
        frames.append(pd.DataFrame(columns))
    if not frames:
        return pd.DataFrame()
    table = pd.concat(frames, ignore_index=True)
    return table.set_index(["dataset", "rank"] if len(frames) > 1 else "rank").drop(
        columns=[] if len(frames) > 1 else ["dataset"])


def headline_figure(summaries: list[DatasetSummary]) -> Figure | None:
    """Accuracy (with its 95 % CI) against median latency, one panel per dataset, one colour per
    model in every panel; the dashed line is the majority class."""
    shown = [s for s in summaries if not s.ranking.empty]
    if not shown:
        return None
    colors = model_colors(sorted({m for s in shown for m in s.ranking["model"]}))
    fig, axes = plt.subplots(1, len(shown), figsize=(5.0 * len(shown), 3.0), squeeze=False)
    for ax, summary in zip(axes.flat, shown):
        kind = views.label_type(summary.ranking)
        key, baseline_key = MAIN_METRIC[kind], BASELINE_METRIC[kind]
        for _, row in summary.ranking.iterrows():
            ci = row.get(f"{key}_ci95")
            yerr = [[row[key] - ci[0]], [ci[1] - row[key]]] if isinstance(ci, list) else None
            ax.errorbar(row["latency_median_ms"], row[key], yerr=yerr, fmt="o", capsize=4,
                        color=colors[row["model"]], label=row["model"])
        baseline = summary.ranking[baseline_key].dropna() if baseline_key in summary.ranking else pd.Series()
        if len(baseline):
            ax.axhline(float(baseline.iloc[0]), linestyle="--", color="grey", linewidth=1,
                       label="majority class" if kind == "single" else "trivial baseline")
        if summary.ranking["latency_median_ms"].notna().all() and (summary.ranking["latency_median_ms"] > 0).all():
            ax.set_xscale("log")
            ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
            ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
            ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel(f"{title('latency_median_ms')}, log scale")
        ax.set_ylabel(f"{title(key)} (95 % CI)")
        ax.set_title(summary.dataset)
        ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    return fig


def _commit(env: dict) -> str:
    git = env.get("git") or {}
    return (git.get("commit") or "unknown")[:12] + (" (uncommitted changes)" if git.get("dirty") else "")


def _hardware(env: dict) -> str:
    hardware = env.get("gpu") or env.get("cpu") or "unknown"
    if env.get("cpu_count"):
        hardware += f", {env['cpu_count']} CPUs, {env.get('memory_gb', '?')} GB, device {env.get('device', '?')}"
    return hardware


def _per_dataset(results: list[dict], describe) -> str:
    """One value when every run shares it, else each value with the datasets whose runs had it
    (a study finished in several sessions, e.g. one dataset per device call)."""
    seen: dict[str, list[str]] = {}
    for r in results:
        datasets = seen.setdefault(describe(r.get("environment") or {}), [])
        if r.get("dataset") not in datasets:
            datasets.append(r.get("dataset"))
    if len(seen) <= 1:
        return next(iter(seen), describe({}))
    return "; ".join(f"{value} ({', '.join(map(str, datasets))})" for value, datasets in seen.items())


def study_facts(study: Study, results: list[dict]) -> dict[str, str]:
    """What was compared and where: models, data, preset, seeds, hardware, commit."""
    env = next((r.get("environment") for r in results if r.get("environment")), {}) or {}
    sources = {}
    for r in results:
        data = r.get("data") or {}
        sources.setdefault(r.get("dataset"), f"{data.get('source', '?')}, "
                                             f"{(data.get('rows') or {}).get('test', '?')} test rows")
    return {
        "models": ", ".join(study.models),
        "data": "; ".join(f"{name} ({sources.get(name, 'not run')})" for name in study.datasets),
        "preset": study.preset + (" with overrides" if study.overrides else ""),
        "seeds": ", ".join(map(str, study.seeds)),
        "hardware": _per_dataset(results, _hardware),
        "commit": _per_dataset(results, _commit),
        "packages": ", ".join(f"{k} {v}" for k, v in (env.get("packages") or {}).items()
                              if k in ("torch", "transformers", "peft")),
    }


def results_of(study_dir: Path, datasets: list[str]) -> list[dict]:
    """Every finished run's results.json of the study's datasets."""
    return [read_json(path) for dataset in datasets for path in sorted((study_dir / dataset).glob("*/results.json"))]


def figure_png(fig: Figure) -> bytes:
    from io import BytesIO

    buffer = BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()

