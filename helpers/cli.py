"""`senticompare`: run a study, or load and check a dataset, from the command line."""
from __future__ import annotations

import argparse
import logging
import sys
import textwrap
from pathlib import Path

from helpers.core.paths import PARAMS_DIR
from helpers.evaluate.quantize import INT8_MODES

SKIPPED_SHOWN = 10  # skipped input rows listed in the terminal; all of them are in the skipped file


def _run(args: argparse.Namespace) -> int:
    from helpers.pipeline.study import run_study

    outcome = run_study(args.study, force=args.force, report=not args.no_report, executor=args.executor,
                        max_workers=args.max_workers, address=args.address)
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


def _pair(args: argparse.Namespace) -> int:
    import json

    from helpers.compare.pair import PairError, format_pair, pair_runs

    try:
        pair = pair_runs(args.run_a, args.run_b)
    except PairError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(pair.to_dict(), indent=2) if args.json else format_pair(pair))
    return 0


def _generate(args: argparse.Namespace) -> int:
    import json

    from helpers.config import ConfigError
    from helpers.generate.answer import answer_texts

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
    schema = None
    if args.schema:
        try:
            schema = open(args.schema, encoding="utf-8").read()
        except OSError as exc:
            raise ConfigError(f"--schema {args.schema}: {exc}; give a file of CREATE TABLE statements") from None
    for row in answer_texts(args.run_dir, texts, base=args.base, db_id=args.db_id, schema=schema):
        print(json.dumps(row, ensure_ascii=False))
    return 0


def _export(args: argparse.Namespace) -> int:
    from helpers.adapters import registry
    from helpers.adapters.export import export_run

    run_dir = registry.finished_run(args.adapter).run_dir if args.adapter else args.run_dir
    print(f"exported: {export_run(run_dir, args.out)}")
    return 0


def _adapters(args: argparse.Namespace) -> int:
    import dataclasses
    import json

    import pandas as pd

    from helpers.adapters import registry
    from helpers.core.paths import experiments_dir

    if args.action == "scan":
        folder = None
        if args.folder:
            folder = experiments_dir() / args.folder
            folder = folder if folder.is_dir() else Path(args.folder)
        registered, skipped = registry.scan(folder)
        print(f"{len(registered)} adapter(s) registered in {registry.registry_file()}")
        for run_dir, reason in skipped:
            print(f"  skipped {run_dir}: {reason}", file=sys.stderr)
    elif args.action == "show":
        record = registry.get_adapter(args.id)
        print(json.dumps({**dataclasses.asdict(record), "present": record.present}, indent=2))
    elif args.action == "remove":
        record = registry.remove_adapter(args.id, delete_run=args.delete_run)
        print(f"removed {record.id}" + (f" and deleted {record.run_dir}" if args.delete_run
                                        else f" (its run folder {record.path} is kept)"))
    else:
        records = registry.list_adapters()
        if not records:
            print(f"no adapters in {registry.registry_file()}; `senticompare adapters scan` registers finished runs")
            return 0
        table = pd.DataFrame([{"id": r.id, "method": r.method, "dataset": r.dataset, "labels": len(r.labels),
                               "preset": r.preset, "seed": r.seed, "accuracy": r.metrics.get("accuracy"),
                               "f1": r.metrics.get("f1"), "created": r.created,
                               "run folder": "present" if r.present else "MISSING"} for r in records])
        print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    return 0


def _predict(args: argparse.Namespace) -> int:
    from transformers.utils import logging as hf_logging

    from helpers.adapters.predict import predict_file

    if not args.verbose:  # the base model's load report lists as missing the head that the adapter then brings
        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
    summary = predict_file(args.adapter, args.input, args.output, column=args.column, int8=args.int8)
    print(f"{summary.predicted} text(s) predicted: {summary.output}")
    if summary.skipped:
        print(f"{len(summary.skipped)} row(s) without a text skipped, listed in {summary.skipped_file}:",
              file=sys.stderr)
        for bad in summary.skipped[:SKIPPED_SHOWN]:
            print(f"  row {bad.row}: {bad.reason}", file=sys.stderr)
        if len(summary.skipped) > SKIPPED_SHOWN:
            print(f"  ... and {len(summary.skipped) - SKIPPED_SHOWN} more", file=sys.stderr)
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from transformers.utils import logging as hf_logging

    from helpers.adapters.evaluate import evaluate_adapter, parse_label_map, summary_table

    if not args.verbose:  # as predict: the base model's load report lists the head the adapter brings
        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
    result = evaluate_adapter(args.adapter, args.dataset, preset=args.preset, split=args.split,
                              label_map=parse_label_map(args.label_map), max_examples=args.max_examples,
                              seed=args.seed)
    print(summary_table(result))
    print(f"written: {result['output']}")
    return 0


def _merge(args: argparse.Namespace) -> int:
    from transformers.utils import logging as hf_logging

    from helpers.adapters.evaluate import parse_label_map
    from helpers.adapters.merge import merge_adapters, parse_weighted, plan_merge

    if not args.verbose:  # the base model's load report lists as missing the heads that the adapters bring
        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
    plan = plan_merge([parse_weighted(spec) for spec in args.adapters], args.method, args.out_id,
                      density=args.density, dataset=args.dataset, label_map=parse_label_map(args.label_map))
    record = merge_adapters(plan, force=args.force, on_stage=lambda line: print(f"merge: {line}", file=sys.stderr,
                                                                                 flush=True))
    print(f"merged: {record.id} (accuracy {record.metrics['accuracy']:.3f}, f1 {record.metrics['f1']:.3f} on "
          f"{record.dataset}); run folder {record.path}")
    return 0


def _serve(args: argparse.Namespace) -> int:
    import os

    from helpers.serve.app import ServeSettings, serve
    from helpers.serve.security import TOKEN_ENV

    serve(ServeSettings(host=args.host, port=args.port, token=os.environ.get(TOKEN_ENV), max_body_bytes=args.max_body,
                        max_jobs=args.max_jobs, loaded_adapters=args.loaded_adapters, int8=args.int8))
    return 0


def _data(args: argparse.Namespace) -> int:
    from helpers import config
    from helpers.data.records import label_summary
    from helpers.data.sources import load_standardized
    from helpers.data.splits import load_splits

    spec = config.get_dataset(args.dataset)
    splits = load_splits(spec, config.load_preset(args.preset), args.seed, args.data_dir)
    source = load_standardized(spec, args.data_dir)  # what load_splits read, now from the data cache
    print(f"{splits.dataset}: {splits.source}  fingerprint {splits.fingerprint}  cache {splits.cache_key}")
    print(f"\nthe source, before the {args.preset} preset's caps (splits it lacks are carved from train):")
    print(label_summary(source.frames, spec.labels, spec.label_type).to_string())
    print(f"\nthe splits of the {args.preset} preset, seed {args.seed}:")
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
                          publish=args.publish, device=args.device, seed=args.seed):
        print(f"{path}\n  {tables.summary_line(read_json(path))}")
    return 0


INT8_HELP = ("load the model with its body in int8 (torchao). On SmolLM2 and Gemma 3, 6,000 reviews each: weight-only "
             "within 0.3 points pooled (-0.4 to +0.8 on single runs) in 0.41-0.72 of the weights' memory at 0.62-0.98x "
             "the speed on a CPU; dynamic 0.97-1.38x the speed but -0.9 points pooled on Gemma in the latest runs, "
             "-2.2 to +1.0 on single runs (docs/performance.md)")

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
                          "on this machine, then every 04_speed alone; ray: one Ray task per run on a Ray "
                          "cluster (docs/scale.md) (replaces the study's executor:)")
    run.add_argument("--max-workers", type=int, default=None,
                     help="runs at once under --executor local (default: one per GPU on a host with several, "
                          "else 1) or ray (default: as many as the cluster fits); replaces the study's max_workers:")
    run.add_argument("--address", default=None,
                     help="the Ray cluster under --executor ray: 'auto' (this machine belongs to one) or "
                          "ray://<head>:10001 (default: the study's ray.address, else Ray started here)")
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
    pair = sub.add_parser(
        "pair", help="two finished runs side by side, from any studies: accuracy, exact McNemar, training time",
        description=textwrap.fill("Pairs two finished run folders (experiments/<study>/<dataset>/<model>/ or their "
                    "published copies) that scored the same test split (the same dataset, preset and seed): each "
                    "run's accuracy, training time, steps, trainable weights and artefact, and the exact McNemar "
                    "test on the examples only one of them got right. For a variant added to a grid in a later "
                    "study, without rerunning the reference."),
    )
    pair.add_argument("run_a", help="the reference run folder (A)")
    pair.add_argument("run_b", help="the run compared with it (B)")
    pair.add_argument("--json", action="store_true", help="print the pair as JSON")
    pair.set_defaults(func=_pair)
    generate = sub.add_parser(
        "generate", help="answer texts with a recorded generative run's adapter (a JSON decision, an instruction's "
                         "answer, an SQL query)",
        description="Loads a `method: generate` run's base model and adapter and answers each text, one JSON line "
                    "per text. A classification run: the raw answer, what it parses to and the labels' probabilities "
                    "at the decision position. An instruction run: the answer. An SQL run: each text is a question "
                    "about a database (--db-id or --schema); the answer, the query read from it, whether it parses "
                    "and whether it runs on the schema. --base puts the base model's answer beside it.")
    generate.add_argument("run_dir", help="a run folder, e.g. experiments/json_decisions/"
                                          "tweet_sentiment_extraction/smollm2-135m-json")
    generate.add_argument("--text", action="append", help="a text to answer (repeatable)")
    generate.add_argument("--input", help="a JSON Lines file of {\"text\": ...} records")
    generate.add_argument("--base", action="store_true", help="also answer with the base model (no adapter)")
    generate.add_argument("--db-id", help="an SQL run: the database the questions are about, one of the run's data")
    generate.add_argument("--schema", help="an SQL run: a file of CREATE TABLE statements the questions are about")
    generate.set_defaults(func=_generate)
    export = sub.add_parser(
        "export", help="merge a finished run's adapter into its base model: a standalone transformers folder",
        description="merge_and_unload() of the run's LoRA into its base model, saved as safetensors with the "
                    "tokenizer, the label names and senticompare.json (run parameters, commit, metrics, the run's "
                    "recalibration); it loads with transformers alone (AutoModelForSequenceClassification, or "
                    "AutoModelForCausalLM for a generator).")
    source = export.add_mutually_exclusive_group(required=True)
    source.add_argument("run_dir", nargs="?",
                        help="a finished run folder, e.g. experiments/default/finefoods/smollm2-135m")
    source.add_argument("--adapter", help="a registered adapter's id instead (senticompare adapters list)")
    export.add_argument("--out", required=True, help="the folder to write (new, empty, or an earlier export)")
    export.set_defaults(func=_export)
    adapters = sub.add_parser(
        "adapters", help="the adapter registry: list, show, remove, or scan for finished runs",
        description="Every finished run registers its adapter in experiments/adapters.sqlite (id: the run folder "
                    "under experiments/, e.g. default/finefoods/smollm2-135m). `list` (the default) shows them, "
                    "`show ID` one record, `remove ID` drops a record (the run folder stays unless --delete-run), "
                    "`scan [STUDY]` registers finished runs made before the registry or copied in.")
    actions = adapters.add_subparsers(dest="action")
    actions.add_parser("list", help="every registered adapter (the default)")
    show = actions.add_parser("show", help="one adapter's record as JSON")
    show.add_argument("id", help="an adapter id, e.g. default/finefoods/smollm2-135m")
    remove = actions.add_parser("remove", help="drop an adapter's record; its run folder is kept")
    remove.add_argument("id", help="an adapter id")
    remove.add_argument("--delete-run", action="store_true", help="also delete the run folder")
    scan = actions.add_parser("scan", help="register every finished run of a study (default: of every study)")
    scan.add_argument("folder", nargs="?", metavar="STUDY",
                      help="a study's name (its folder under experiments/) or any folder of run folders")
    adapters.set_defaults(func=_adapters, action="list")
    predict = sub.add_parser(
        "predict", help="label a file of texts with a registered adapter",
        description="Reads texts from .csv, .jsonl or .json (the --column field) or .txt (one per line) and writes, "
                    "in the input's order, each text's label, its class probabilities after the run's own "
                    "recalibration, its conformal set, the abstain and confident decisions, and for a generative "
                    "adapter its parsed answer. Rows without a text are skipped and listed in "
                    "<output stem>.skipped.jsonl beside it. Details: docs/adapters.md.")
    predict.add_argument("--adapter", required=True, help="a registered adapter's id (senticompare adapters list)")
    predict.add_argument("--input", required=True, help="texts.csv | .jsonl | .json | .txt")
    predict.add_argument("--output", required=True, help="predictions.jsonl | .csv (written whole at the end)")
    predict.add_argument("--column", default="text", help="the text's column or field (default: text)")
    predict.add_argument("--int8", choices=INT8_MODES, default=None, help=INT8_HELP)
    predict.set_defaults(func=_predict)
    evaluate = sub.add_parser(
        "evaluate", help="score a registered adapter on a labelled dataset (e.g. one it was not trained on)",
        description="Loads the dataset's split through the study's own data code, decides its texts with the "
                    "adapter's own rules (recalibration, conformal sets), maps the dataset's label names onto the "
                    "adapter's, and prints accuracy and macro F1 with 95 %% bootstrap CIs, the majority class, "
                    "conformal coverage and the confusion matrix; writes them to "
                    "experiments/evaluations/<adapter>__on__<dataset>.json. Single-label heads only. "
                    "Details: docs/adapters.md.")
    evaluate.add_argument("--adapter", required=True, help="a registered adapter's id (senticompare adapters list)")
    evaluate.add_argument("--dataset", required=True, help="a dataset id from params/datasets.yaml")
    evaluate.add_argument("--preset", default=None,
                          help="preset whose caps draw the split (default: the adapter run's own, with its overrides)")
    evaluate.add_argument("--split", default="test", choices=["test", "validation"])
    evaluate.add_argument("--label-map", action="append", default=[], metavar="DATASET_LABEL=ADAPTER_LABEL",
                          help="map a dataset label onto an adapter label, e.g. great=positive (repeat per label; "
                               "default: the same name)")
    evaluate.add_argument("--max-examples", type=int, default=None, help="a stratified sample of the split")
    evaluate.add_argument("--seed", type=int, default=1337, help="the splits' seed (default: 1337)")
    evaluate.set_defaults(func=_evaluate)
    merge = sub.add_parser(
        "merge", help="merge registered adapters of one base model and label set with weights into a new adapter",
        description="Combines the adapters' LoRA weights with peft's add_weighted_adapter and their classification "
                    "heads (modules_to_save) with the same weights, then evaluates the merged adapter on a parent's "
                    "saved splits (its own recalibration and conformal sets) and registers it as "
                    "merged/<dataset>/<out-id>, which predict and export take. Details: docs/adapters.md.")
    merge.add_argument("--adapters", nargs="+", required=True, metavar="ID:WEIGHT",
                       help="two or more registered adapters with their weights, e.g. A:0.5 B:0.5")
    merge.add_argument("--method", default="linear", choices=["linear", "ties", "dare_ties", "cat"],
                       help="peft's combination: linear (one rank), ties and dare_ties (one rank; keep --density of "
                            "each delta), cat (any ranks; exactly the weighted sum of the parents' updates)")
    merge.add_argument("--out-id", required=True, help="the merged adapter's name: merged/<dataset>/<out-id>")
    merge.add_argument("--density", type=float, default=None,
                       help="ties and dare_ties: the share of each delta kept (default 0.5)")
    merge.add_argument("--dataset", default=None,
                       help="evaluate on the saved splits of the parent of this dataset (default: the first parent)")
    merge.add_argument("--label-map", action="append", metavar="PARENT_LABEL=LABEL",
                       help="pair a parent's label with the evaluated parent's (repeat per label), e.g. great=positive: "
                            "heads with other label names merge row by row")
    merge.add_argument("--force", action="store_true", help="replace a merged adapter of the same name")
    merge.set_defaults(func=_merge)
    serve = sub.add_parser(
        "serve", help="the local API and web UI: adapters, predict, generate, merge, trainings as jobs, reports",
        description="FastAPI under uvicorn: the web UI at /, the API's OpenAPI page at /docs. Binds to 127.0.0.1; "
                    "another --host needs SENTICOMPARE_SERVE_TOKEN (16+ characters), which every API call then "
                    "sends as `Authorization: Bearer <token>`. Details: docs/serve.md.")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1, this machine only)")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--max-jobs", type=int, default=1,
                       help="trainings and merges run at once; the others wait in the queue (default: 1)")
    serve.add_argument("--max-body", type=int, default=1 << 20, help="largest request body in bytes (default: 1 MiB)")
    serve.add_argument("--int8", choices=INT8_MODES, default=None, help=INT8_HELP)
    serve.add_argument("--loaded-adapters", type=int, default=4,
                       help="adapters kept loaded for /predict and /generate (default: 4)")
    serve.set_defaults(func=_serve)
    data = sub.add_parser("data", help="load and check a dataset, print its card",
                          description="Loads a dataset through the study's own code and prints rows and class "
                                      "balance per split of the full source, then of the preset's splits "
                                      "(after its caps), and the data checks' findings.")
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
    bench.add_argument("--seed", type=int, default=None,
                       help="another seed than the params file's (data sample, initial weights, order); "
                            "its files are named <model>.seed<N>.json beside the params' seed's")
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
