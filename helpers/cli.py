"""`senticompare`: run a study, or load and check a dataset, from the command line."""
from __future__ import annotations

import argparse
import logging
import sys
import textwrap

from helpers.core.paths import PARAMS_DIR


def _run(args: argparse.Namespace) -> int:
    from helpers.pipeline.study import run_study

    outcome = run_study(args.study, force=args.force, report=not args.no_report, executor=args.executor,
                        max_workers=args.max_workers)
    print(f"study {outcome.study}: {len(outcome.done)} run(s) done, {len(outcome.reused)} reused, "
          f"{len(outcome.failed)} failed")
    for plan, stage, error in outcome.failed:
        print(f"  FAILED {plan.run_dir.parent.name}/{plan.run_dir.name} in {stage}: {error}", file=sys.stderr)
    if outcome.report_html:
        print(f"report: {outcome.report_html}\n        {outcome.report_pdf}")
    if args.publish:
        _publish(args.study, outcome)
    return 1 if outcome.failed else 0


def _publish(study_arg: str, outcome) -> None:
    from helpers import config
    from helpers.pipeline.publish import publish_study
    from helpers.pipeline.study import study_dir

    study = config.load_study(study_arg)
    print(f"published: {publish_study(study, study_dir(study), outcome.report_html, outcome.report_pdf, study_arg)}")


def _report(args: argparse.Namespace) -> int:
    from helpers.pipeline.study import report_study

    outcome = report_study(args.study)
    print(f"study {outcome.study}: {len(outcome.reused)} finished run(s) reported")
    print(f"report: {outcome.report_html}\n        {outcome.report_pdf}")
    if args.publish:
        _publish(args.study, outcome)
    return 0


def _generate(args: argparse.Namespace) -> int:
    import json

    from helpers.config import ConfigError
    from helpers.generate.stage import answer_texts

    texts = list(args.text or [])
    if args.input:
        try:
            lines = [line for line in open(args.input, encoding="utf-8") if line.strip()]
            texts += [json.loads(line)["text"] for line in lines]
        except (OSError, json.JSONDecodeError, KeyError, TypeError) as exc:
            raise ConfigError(f"{args.input}: {exc}; give a JSON Lines file with one {{\"text\": ...}} "
                              f"per line") from None
    if not texts:
        raise ConfigError("nothing to answer: give --text \"...\" (repeatable) or --input file.jsonl")
    for row in answer_texts(args.run_dir, texts, base=args.base):
        print(json.dumps(row, ensure_ascii=False))
    return 0


def _export(args: argparse.Namespace) -> int:
    from helpers.adapters.export import export_run

    print(f"exported: {export_run(args.run_dir, args.out)}")
    return 0


def _data(args: argparse.Namespace) -> int:
    from helpers import config
    from helpers.data.splits import load_splits

    splits = load_splits(config.get_dataset(args.dataset), config.load_preset(args.preset), args.seed,
                              args.data_dir)
    print(f"{splits.dataset}: {splits.source}  fingerprint {splits.fingerprint}  cache {splits.cache_key}")
    print(splits.summary().to_string())
    for f in splits.findings:
        print(f"  {f.level:7s} {f.check:12s} {f.split:10s} {f.count:6d}  {f.message}")
    return 0


def _prepare(args: argparse.Namespace) -> int:
    from helpers import config
    from helpers.train import models

    registry = config.load_models()
    chosen = args.models or [m for m, spec in registry.items() if spec.source != "hub"]
    for model_id in chosen:
        print(f"{model_id}: {models.model_path(config.get_model(model_id))}")
    return 0


def _bench(args: argparse.Namespace) -> int:
    from helpers.bench import tables
    from helpers.bench.config import load_bench
    from helpers.bench.run import run_bench
    from helpers.core.io import read_json

    for path in run_bench(load_bench(args.params), args.models, args.datasets,
                                publish=args.publish, device=args.device):
        print(f"{path}\n  {tables.summary_line(read_json(path))}")
    return 0


ENVIRONMENT = """environment variables:
  SENTICOMPARE_DATA_DIR     local data mirror laid out like ../shared/datasets (or a study's data_dir)
  SENTICOMPARE_EXPERIMENTS  where run folders go (default: experiments/)
  SENTICOMPARE_REPORTS      where reports go (default: reports/)
  SENTICOMPARE_CACHE        converted model weights and loaded data (default: .cache/)
  SENTICOMPARE_DATA_CACHE   loaded, standardized datasets (default: $SENTICOMPARE_CACHE/data)
  SENTICOMPARE_THREADS      CPU threads: a number pins it, `auto` follows the load (default: torch's own)
  SENTICOMPARE_GIT_COMMIT   the commit a copied tree was made from (recorded instead of asking git)
  HF_HUB_OFFLINE=1          never try the Hugging Face hub (hub datasets then need the mirror)"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="senticompare",
        description="Fine-tune small language models with LoRA/QLoRA and compare them: quality, speed, cost.",
        epilog=ENVIRONMENT,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser(
        "run", help="run a study end to end (stage notebooks per model, comparison, HTML + PDF report)",
        description=textwrap.fill("Executes notebooks/01..04 per dataset x model x seed with papermill into "
                    "experiments/<study>/<dataset>/<model>/, then 05_compare per dataset, then writes "
                    "reports/<study>.html and .pdf. Every dataset is loaded and checked before any training. "
                    "Finished runs are reused; a failed model is recorded and the others go on; the exit "
                    "status is 1 when any model failed, 2 when the study could not start. One run of a study "
                    "at a time: a second one refuses, naming the first one's pid."),
        epilog=ENVIRONMENT,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument("study", help=f"a study YAML, e.g. {PARAMS_DIR.name}/studies/default.yaml, or a study's name "
                                   f"in {PARAMS_DIR.name}/studies/ (e.g. default)")
    run.add_argument("--force", action="store_true",
                     help="rerun runs that already have results; each finished run is replaced only when its new "
                          "run has finished (if the new one fails or is killed, the old results stay)")
    run.add_argument("--no-report", action="store_true", help="skip the HTML/PDF report")
    run.add_argument("--executor", default=None,
                     help="serial: one run after another (the default); local: up to --max-workers runs at once "
                          "on this machine, then every 04_speed alone (replaces the study's executor:)")
    run.add_argument("--max-workers", type=int, default=None,
                     help="runs at once under --executor local (default: one per GPU on a host with several, "
                          "else 1; replaces the study's max_workers:)")
    run.add_argument("--publish", action="store_true",
                     help="copy the results, comparisons and report to reports/studies/<device>/<study>/ "
                          "(committed on purpose, like published benchmarks)")
    run.set_defaults(func=_run)
    report = sub.add_parser(
        "report", help="compare and report what a study has finished, training nothing",
        description=textwrap.fill("Runs 05_compare per dataset and writes reports/<study>.html and .pdf from the "
                    "study's finished runs only: for a study stopped part way (killed, out of device time) or "
                    "whose runs were made on another machine. Runs not finished are listed as such."),
        epilog=ENVIRONMENT,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    report.add_argument("study", help="a study YAML or a study's name in params/studies/")
    report.add_argument("--publish", action="store_true",
                        help="copy the finished results, comparisons and report to reports/studies/<device>/<study>/")
    report.set_defaults(func=_report)
    generate = sub.add_parser(
        "generate", help="answer texts with a recorded generative run's adapter (JSON decision and rationale)",
        description="Loads a `method: generate` run's base model and adapter and answers each text: the raw "
                    "answer, what it parses to and the labels' probabilities at the decision position; one JSON "
                    "line per text. --base puts the base model's answer beside it.")
    generate.add_argument("run_dir", help="a run folder, e.g. experiments/json_decisions/"
                                          "tweet_sentiment_extraction/smollm2-135m-json")
    generate.add_argument("--text", action="append", help="a text to answer (repeatable)")
    generate.add_argument("--input", help="a JSON Lines file of {\"text\": ...} records")
    generate.add_argument("--base", action="store_true", help="also answer with the base model (no adapter)")
    generate.set_defaults(func=_generate)
    export = sub.add_parser(
        "export", help="merge a finished run's adapter into its base model: a standalone transformers folder",
        description="merge_and_unload() of the run's LoRA into its base model, saved as safetensors with the "
                    "tokenizer, the label names and senticompare.json (run parameters, commit, metrics, the run's "
                    "recalibration); it loads with transformers alone (AutoModelForSequenceClassification, or "
                    "AutoModelForCausalLM for a generator).")
    export.add_argument("run_dir", help="a finished run folder, e.g. experiments/default/finefoods/smollm2-135m")
    export.add_argument("--out", required=True, help="the folder to write (new, empty, or an earlier export)")
    export.set_defaults(func=_export)
    data = sub.add_parser("data", help="load and check a dataset, print its card",
                          description="Loads a dataset through the study's own code and prints rows per "
                                      "split, class balance and the data checks' findings.")
    data.add_argument("dataset", help="a dataset id from params/datasets.yaml")
    data.add_argument("--preset", default="quick", help="preset whose caps apply (default: quick)")
    data.add_argument("--seed", type=int, default=1337)
    data.add_argument("--data-dir", default=None, help="local mirror folder (else SENTICOMPARE_DATA_DIR)")
    data.set_defaults(func=_data)
    prepare = sub.add_parser("prepare", help="convert the packaged models once to the local safetensors cache",
                             description="Dequantizes the GGUF models shipped in PyPI packages into "
                                         ".cache/models (once; later loads take about a second).")
    prepare.add_argument("models", nargs="*", help="model ids (default: every packaged model)")
    prepare.set_defaults(func=_prepare)
    bench = sub.add_parser("bench", help="benchmark our training and inference path against the HF Trainer baseline (pad to max length)",
                           description="Per dataset and model of the params file: training (Trainer + peft padded "
                                       "to max_length vs ours), inference (pipeline defaults vs ours) at several "
                                       "batch sizes, latency, MFU against a matmul peak measured in the same run, "
                                       "LoRA vs QLoRA, 1 vs 2 threads, scaling. Writes one JSON per model to "
                                       "experiments/bench/<name>/<dataset>/.")
    bench.add_argument("params", nargs="?", default=str(PARAMS_DIR / "bench.yaml"), help="bench params YAML")
    bench.add_argument("--models", nargs="*", default=None, help="only these model ids")
    bench.add_argument("--datasets", nargs="*", default=None, help="only these dataset ids")
    bench.add_argument("--device", default=None, help="cuda | mps | cpu (default: detected)")
    bench.add_argument("--publish", action="store_true",
                       help="also write the JSON to reports/benchmarks/<device-name>/ (committed reference results)")
    bench.set_defaults(func=_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    from helpers.config import ConfigError
    from helpers.data.records import DataError
    from helpers.pipeline.lock import StudyLocked
    from helpers.report.stitch import ReportError
    from helpers.train.models import ModelError

    try:
        return args.func(args)
    except (ConfigError, DataError, ModelError, StudyLocked, ReportError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
