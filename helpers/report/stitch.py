"""Stitch a study's executed notebooks into one HTML report (code hidden, images embedded) and
print it to PDF.

Page one answers first (helpers/report/summary.py: the study, a verdict made from the numbers, the
ranking, one headline figure), then a table of contents, the comparison of each dataset with its
held-out groups, and an appendix: each run's stage notebooks, then the benchmark result folders the
study names (`benchmarks:`, rendered by notebooks/06_bench). Text that comes from data or errors
goes through helpers/report/escape.py before it enters the report.
"""
from __future__ import annotations

import base64
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import nbformat
from nbconvert import HTMLExporter

from helpers.compare.runs import stopped_where, unfinished
from helpers.config import Study
from helpers.core.io import atomic_write_bytes, atomic_write_text, read_json
from helpers.core.paths import bench_notebook
from helpers.pipeline import holdout
from helpers.pipeline.run import STAGES
from helpers.report import summary
from helpers.report.escape import html_text, md

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
# Print layout: tables wrap their headers instead of scrolling (a printed scroll bar hides columns),
# headings stay with what follows them, figures are not split, and every page is numbered.
PRINT_CSS = """<style>
@page { size: A4 landscape; margin: 10mm 11mm 12mm;
        @bottom-right { content: "page " counter(page) " of " counter(pages); font-size: 9px; color: #555; } }
.jp-OutputArea-output, .jp-RenderedHTMLCommon, .jp-OutputArea, .jp-Cell-outputArea
  { overflow: visible !important; max-width: 100%; }
.jp-RenderedHTMLCommon table { font-size: 9.5px; table-layout: auto; max-width: 100%; }
.jp-RenderedHTMLCommon td, .jp-RenderedHTMLCommon th { white-space: normal; padding: 2px 5px; }
.jp-RenderedHTMLCommon h1, .jp-RenderedHTMLCommon h2, .jp-RenderedHTMLCommon h3, .jp-RenderedHTMLCommon h4
  { break-after: avoid; page-break-after: avoid; }
.jp-MarkdownCell:has(h1, h2, h3, h4) { break-after: avoid; }
.jp-Cell:has(img) { break-inside: avoid; }
.jp-RenderedHTMLCommon table:has(th:nth-child(12)) { width: 100%; font-size: 8.5px; }
img { max-width: 100%; }
.page-one table.ranking { width: 100%; }
.page-one table.ranking td { white-space: nowrap; }
.page-one h2, .page-one h3 { margin: 8px 0 4px; }
.page-one table.facts { margin-left: 0; }
.page-one table.facts th { text-align: left; padding-right: 12px; }
.page-one img { max-height: 48mm; }
.jp-Notebook { padding-top: 0 !important; }
.jp-Cell { padding-top: 2px !important; padding-bottom: 2px !important; }
.page-one h1 { margin: 0 0 4px; font-size: 22px; }
.page-one h2 { font-size: 16px; }
.page-one table.facts td, .page-one table.facts th { padding: 1px 6px; font-size: 9px; }
.page-break { break-after: page; }
.verdict { font-size: 11px; line-height: 1.3; margin: 2px 0; }
</style>"""
STAGE_TITLES = {"01_data": "Data", "02_train": "Training", "03_evaluate": "Evaluation", "04_speed": "Speed"}
# Headings inside the stage notebooks sit this many levels below the report's own.
APPENDIX_DEMOTION = 2


class ReportError(RuntimeError):
    pass


def _markdown(text: str) -> nbformat.NotebookNode:
    return nbformat.v4.new_markdown_cell(text)


def _section(level: int, text: str, anchor: str) -> nbformat.NotebookNode:
    """A heading of the report's own with an anchor the table of contents links to."""
    return _markdown(f'<a id="{anchor}"></a>\n\n{"#" * level} {text}')


def _demote(source: str, levels: int) -> str:
    return re.sub(r"^(#{1,6}) ", lambda m: "#" * min(6, len(m.group(1)) + levels) + " ", source, flags=re.M)


def _image(png_base64: str, alt: str) -> dict:
    """An embedded PNG as HTML with its alternative text (nbconvert's lab template writes none)."""
    return nbformat.v4.new_output("display_data", data={
        "text/html": f'<img src="data:image/png;base64,{png_base64}" alt="{html_text(alt)}">'})


def _cells(notebook_path: Path, demote: int = 0) -> list[nbformat.NotebookNode]:
    """An executed notebook's cells, minus the parameters cells and stderr noise; every figure gets
    the heading it stands under as its alternative text."""
    nb = nbformat.read(notebook_path, as_version=4)
    cells, heading = [], notebook_path.stem
    for cell in nb.cells:
        tags = cell.get("metadata", {}).get("tags", [])
        if "parameters" in tags or "injected-parameters" in tags:
            continue
        if cell.cell_type == "markdown":
            if cell.source.lstrip().startswith("# "):
                continue  # the notebook's own title; the report sets its own headings
            found = re.findall(r"^#+ (.+)$", cell.source, flags=re.M)
            heading = found[-1].strip() if found else heading
            cell.source = _demote(cell.source, demote)
        if cell.cell_type == "code":
            cell.outputs = [_image(o["data"]["image/png"], f"Figure: {heading}")
                            if "image/png" in o.get("data", {}) else o
                            for o in cell.outputs if not (o.output_type == "stream" and o.name == "stderr")]
        cells.append(cell)
    return cells


def page_one(study: Study, study_dir: Path) -> list[nbformat.NotebookNode]:
    """The study, the verdict per dataset, the ranking tables and the headline figure."""
    summaries = [found for found in (summary.load_summary(study_dir, d) for d in study.datasets) if found]
    facts = summary.study_facts(study, summary.results_of(study_dir, study.datasets))
    rows = "".join(f"<tr><th>{html_text(k)}</th><td>{html_text(v)}</td></tr>" for k, v in facts.items())
    cells = [_markdown(f'<div class="page-one">\n\n# SentiCompare study: {md(study.name)}\n\n'
                       f'<table class="facts">{rows}</table>\n\n</div>'),
             _markdown('<div class="page-one">\n\n## Verdict\n\n' + "\n\n".join(
                 f'<p class="verdict">{html_text(summary.verdict(s))}</p>' for s in summaries) + "\n\n</div>")]
    table = summary.ranking_table(summaries)
    if len(table):
        where = f" on {md(summaries[0].dataset)}" if len(summaries) == 1 else ""
        cells.append(_markdown(f'<div class="page-one">\n\n### Ranking{where}\n\n'
                               + table.to_html(border=0, classes="ranking") + "\n\n</div>"))
    figure = summary.headline_figure(summaries)
    if figure is not None:
        png = base64.b64encode(summary.figure_png(figure)).decode()
        cells.append(_markdown(f'<div class="page-one"><img src="data:image/png;base64,{png}" alt="Figure: '
                               f'accuracy with its 95 % confidence interval against median latency, per model and '
                               f'dataset"></div>'))
    cells.append(_markdown('<div class="page-break"></div>'))
    return cells


def stitch(study: Study, study_dir: Path) -> nbformat.NotebookNode:
    """One notebook: page one, a table of contents, the comparison of each dataset and its held-out
    groups, then an appendix with every run's stages (or its failure) and the benchmarks."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    sections: list[tuple[int, str, str]] = []  # level, title, anchor

    def section(level: int, text: str) -> nbformat.NotebookNode:
        anchor = f"section-{len(sections) + 1}"
        sections.append((level, text, anchor))
        return _section(level, md(text), anchor)

    body = []
    for dataset in study.datasets:
        dataset_dir = study_dir / dataset
        body.append(section(1, f"Comparison on {dataset}"))
        compare = dataset_dir / "05_compare.ipynb"
        if compare.exists():
            body.extend(_cells(compare))
        held_out = holdout.report_markdown(study_dir, dataset, study)
        if held_out:
            by = "context" if held_out.startswith("## Leave-one-context-out") else "group"
            body.append(section(2, f"Leave-one-{by}-out on {dataset}"))
            body.append(_markdown(held_out.split("\n", 1)[1]))  # its own heading is the section's
    body.append(section(1, "Appendix A: every run"))
    body.append(_markdown("Each run's data card, training curve, evaluation and speed details, as its stage "
                          "notebooks printed them (rerun any of them with the run folder's `reproduce.sh`)."))
    for dataset in study.datasets:
        dataset_dir = study_dir / dataset
        for run_dir in sorted(p for p in dataset_dir.iterdir() if p.is_dir()) if dataset_dir.is_dir() else []:
            body.append(section(2, f"{run_dir.name} on {dataset}"))
            if (run_dir / "failed.json").exists():
                failure = read_json(run_dir / "failed.json")
                body.append(_markdown(
                    f"**Failed in {md(failure['stage'])}:**\n\n<pre>{html_text(failure['error'])}</pre>"))
            elif (pending := unfinished(run_dir)) is not None:
                body.append(_markdown(f"**Not finished** ({md(stopped_where(pending['stage']))}): "
                                      f"{md(pending['error'])}."))
            for stage in STAGES:
                path = run_dir / f"{stage}.ipynb"
                if path.exists():
                    body.append(_markdown(f"### {STAGE_TITLES[stage]}"))
                    body.extend(_cells(path, APPENDIX_DEMOTION))
    shown = [folder for folder in study.benchmarks if bench_notebook(study_dir, folder).exists()]
    if shown:
        body.append(section(1, "Appendix B: benchmarks"))
    for folder in shown:
        body.append(section(2, f"Our path against the HF Trainer baseline ({Path(folder).name})"))
        body.extend(_cells(bench_notebook(study_dir, folder), 1))
    contents = "\n".join(f"{'  ' * (level - 1)}- [{md(text)}](#{anchor})" for level, text, anchor in sections)
    nb.cells = [*page_one(study, study_dir), _markdown(f"## Contents\n\n{contents}"), *body]
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
