"""Stitch a study's executed notebooks into one HTML report (code hidden) and print it to PDF.

The comparison comes first (summary table and ranking, then the leave-one-group-out table
where the study holds groups out), then each model's stage notebooks, then the benchmark
result folders the study names (`benchmarks:`, rendered by notebooks/06_bench).
Text that comes from data or errors is HTML-escaped before it enters the report.
"""
from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import nbformat
from nbconvert import HTMLExporter

from helpers.config import Study
from helpers.core.io import atomic_write_bytes, atomic_write_text, read_json
from helpers.core.paths import bench_notebook
from helpers.pipeline import holdout
from helpers.pipeline.run import STAGES
from helpers.report.escape import html_text, md

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
# Wide tables wrap instead of scrolling, so the PDF shows every column.
PRINT_CSS = """<style>
@page { size: A4 landscape; margin: 12mm; }
.jp-OutputArea-output, .jp-RenderedHTMLCommon { overflow-x: visible !important; }
.jp-RenderedHTMLCommon table { font-size: 11px; table-layout: auto; }
.jp-RenderedHTMLCommon td, .jp-RenderedHTMLCommon th { white-space: normal; padding: 2px 6px; }
</style>"""
STAGE_TITLES = {"01_data": "Data", "02_train": "Training", "03_evaluate": "Evaluation", "04_speed": "Speed"}


class ReportError(RuntimeError):
    pass


def _markdown(text: str) -> nbformat.NotebookNode:
    return nbformat.v4.new_markdown_cell(text)


def _cells(notebook_path: Path) -> list[nbformat.NotebookNode]:
    """An executed notebook's cells, minus the parameters cells and stderr noise."""
    nb = nbformat.read(notebook_path, as_version=4)
    cells = []
    for cell in nb.cells:
        tags = cell.get("metadata", {}).get("tags", [])
        if "parameters" in tags or "injected-parameters" in tags:
            continue
        if cell.cell_type == "markdown" and cell.source.lstrip().startswith("# "):
            continue  # the notebook's own title; the report sets its own headings
        if cell.cell_type == "code":
            cell.outputs = [o for o in cell.outputs if not (o.output_type == "stream" and o.name == "stderr")]
        cells.append(cell)
    return cells


def stitch(study: Study, study_dir: Path) -> nbformat.NotebookNode:
    """One notebook: the comparison of each dataset, then every run's stages or its failure."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells.append(_markdown(
        f"# SentiCompare study: {md(study.name)}\n\n"
        f"Models: {', '.join(map(md, study.models))} · datasets: {', '.join(map(md, study.datasets))}"
        f" · preset: {md(study.preset)} · seeds: {', '.join(map(md, study.seeds))}"))
    for dataset in study.datasets:
        dataset_dir = study_dir / dataset
        nb.cells.append(_markdown(f"# Comparison on {md(dataset)}"))
        compare = dataset_dir / "05_compare.ipynb"
        if compare.exists():
            nb.cells.extend(_cells(compare))
        held_out = holdout.report_markdown(study_dir, dataset)
        if held_out:
            nb.cells.append(_markdown(held_out))
        for run_dir in sorted(p for p in dataset_dir.iterdir() if p.is_dir()):
            nb.cells.append(_markdown(f"# {md(run_dir.name)} on {md(dataset)}"))
            if (run_dir / "failed.json").exists():
                failure = read_json(run_dir / "failed.json")
                nb.cells.append(_markdown(
                    f"**Failed in {md(failure['stage'])}:**\n\n<pre>{html_text(failure['error'])}</pre>"))
            for stage in STAGES:
                path = run_dir / f"{stage}.ipynb"
                if path.exists():
                    nb.cells.append(_markdown(f"## {STAGE_TITLES[stage]}"))
                    nb.cells.extend(_cells(path))
    for folder in study.benchmarks:
        path = bench_notebook(study_dir, folder)
        if path.exists():
            nb.cells.append(_markdown(f"# Benchmark: our path against the HF Trainer baseline ({md(Path(folder).name)})"))
            nb.cells.extend(_cells(path))
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"cell-{i}"  # stitched notebooks repeat ids; nbformat wants them unique
    return nb


def to_html(nb: nbformat.NotebookNode) -> str:
    exporter = HTMLExporter(template_name="lab")
    exporter.exclude_input = True
    exporter.exclude_input_prompt = True
    exporter.exclude_output_prompt = True
    body, _ = exporter.from_notebook_node(nb)
    return body.replace("</head>", PRINT_CSS + "\n</head>", 1)


def find_chromium() -> str:
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    raise ReportError("no Chromium found for the PDF; install Debian's `chromium` (make setup does)")


def html_to_pdf(html_path: Path, pdf_path: Path, timeout: int = 180) -> Path:
    """Print the HTML with headless Chromium, offline (no background network, fresh profile)."""
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        tmp_pdf = Path(profile) / "report.pdf"
        command = [
            find_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            f"--user-data-dir={profile}", "--no-pdf-header-footer", "--run-all-compositor-stages-before-draw",
            f"--print-to-pdf={tmp_pdf}", html_path.resolve().as_uri(),
        ]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise ReportError(f"Chromium did not finish printing {html_path} within {timeout} s; the HTML report is "
                              f"complete: open it, or run the study again to retry the PDF") from None
        if not tmp_pdf.exists() or tmp_pdf.stat().st_size == 0:
            raise ReportError(f"Chromium did not write the PDF (exit {done.returncode}): {done.stderr[-2000:]}")
        atomic_write_bytes(pdf_path, tmp_pdf.read_bytes())
    return pdf_path


def build_report(study: Study, study_dir: Path, reports_dir: Path) -> tuple[Path, Path]:
    html_path = atomic_write_text(reports_dir / f"{study.name}.html", to_html(stitch(study, study_dir)))
    return html_path, html_to_pdf(html_path, reports_dir / f"{study.name}.pdf")
