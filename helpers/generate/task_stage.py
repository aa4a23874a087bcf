"""The stages of a task run (a dataset of `task: instruction | sql`, learned by a `method: generate`
model): what 02_train, 03_evaluate and 04_speed do.

The prompt is one user turn through the model's chat template: the instruction as the dataset gives
it, or the database's schema and the question (helpers/generate/sql.py); the preset's max_length
caps the instruction's or question's own tokens, never the schema's. 02_train fine-tunes on the
targets, the loss on the answer only. 03_evaluate has the fine-tuned model and its base model
(no adapter) answer every test prompt, greedy: base against fine-tuned is the headline. Each answer
is scored (helpers/generate/instruction.py, sql.py) and saved in predictions.csv with a `correct`
column, which the comparison reads for CIs and McNemar between models; results.json's `accuracy`
is the task's per-example success rate (`accuracy_is` says which). A task has no classes: no F1,
calibration, conformal sets or costs are recorded.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from helpers.config import ConfigError
from helpers.core.io import atomic_write_text
from helpers.data.records import DatasetSplits
from helpers.data.splits import read_splits
from helpers.evaluate import significance
from helpers.generate import chat, decode, instruction, sft, sql
from helpers.generate.speed import measure_generation
from helpers.generate.stage import tokenizer_for
from helpers.pipeline.run import Run
from helpers.train import models

ACCURACY_IS = {
    "instruction": (f"final-number match (the answer's last number equals the reference's; a reference without a "
                    f"number: ROUGE-L >= {instruction.ROUGE_L_RIGHT})"),
    "sql": (f"execution accuracy: the query's result equals the gold query's on all {len(sql.FILLINGS)} databases "
            f"built from the schema and filled with seeded generated rows"),
}
SUCCESS = {"instruction": "success_rate", "sql": "execution_accuracy"}  # the metric `accuracy` repeats
SHOWN = {"instruction": ("accuracy", "final_number_match", "rouge_l", "answer_words", "reference_words"),
         "sql": ("accuracy", "execution_accuracy", "executes_rate", "sql_parse_rate", "exact_match")}


def user_turns(run: Run, tokenizer, df: pd.DataFrame) -> list[str]:
    """Each row's user turn, its instruction or question cut to the preset's max_length tokens."""
    texts = [chat.fit_text(tokenizer, text, run.preset.max_length) for text in df["text"]]
    if run.dataset.task == "sql":
        return [sql.user_turn(text, schema) for text, schema in zip(texts, df["schema"], strict=True)]
    return texts


def prompts(run: Run, tokenizer, df: pd.DataFrame) -> list[str]:
    """The prompts as the model sees them, ending where its answer starts."""
    return [chat.render_prompt(tokenizer, user) for user in user_turns(run, tokenizer, df)]


def examples(run: Run, tokenizer, df: pd.DataFrame) -> list[dict[str, list[int]]]:
    """Supervised examples: each prompt with its target, the prompt's tokens masked."""
    return [chat.sft_example(tokenizer, user, target)
            for user, target in zip(user_turns(run, tokenizer, df), df["target"], strict=True)]


def train(run: Run, splits: DatasetSplits, validation: pd.DataFrame | None, output_dir: Path):
    """02_train: LoRA (or QLoRA) on the causal LM, the loss on the targets only; returns the model and
    its TrainResult."""
    cfg = run.preset.train
    tokenizer = tokenizer_for(run)
    model = models.adapt(models.load_causal_lm(run.model, run.precision, cfg.quantization), run.model, cfg)
    result = sft.fit_examples(model, tokenizer, examples(run, tokenizer, splits.train),
                              examples(run, tokenizer, validation) if validation is not None else None,
                              cfg, run.precision, run.seed, output_dir, run.tensorboard_dir)
    return model, result


def score(task: str, answers: list[str], test: pd.DataFrame) -> tuple[dict, pd.DataFrame]:
    """The answers' metrics and each answer's scores (a `correct` column among them)."""
    references = test["target"].tolist()
    if task == "sql":
        names = test["group"].tolist() if "group" in test else [f"row {i}" for i in range(len(test))]
        found = sql.score_all(answers, references, test["schema"].tolist(), names)
        metrics = sql.sql_metrics(found)
        per = pd.DataFrame({"query": [s.query for s in found], "correct": [s.correct for s in found],
                            "executes": [s.executes for s in found], "parsed": [s.parsed for s in found],
                            "exact_match": [s.exact_match for s in found]})
    else:
        found = [instruction.score(a, r) for a, r in zip(answers, references, strict=True)]
        metrics = instruction.instruction_metrics(found, references)
        per = pd.DataFrame({"correct": [s.correct for s in found], "number": [s.number for s in found],
                            "rouge_l": [round(s.rouge_l, 4) for s in found], "words": [s.words for s in found]})
    metrics["accuracy"] = metrics[SUCCESS[task]]
    return metrics, per


def answer_all(run: Run, model, tokenizer, test: pd.DataFrame, validation: pd.DataFrame) -> tuple[list[str], dict]:
    """One model's greedy answers to the test prompts, with its answers' loss and perplexity on validation
    and how often an answer was cut at max_new_tokens."""
    gen = run.preset.generation
    answers = decode.generate(model, tokenizer, prompts(run, tokenizer, test), gen.max_new_tokens, gen.batch_size,
                              run.device)
    loss = sft.answer_loss(model, tokenizer, examples(run, tokenizer, validation), run.preset.train.eval_batch_size,
                           run.device)
    lengths = [len(ids) for ids in tokenizer(answers, add_special_tokens=False)["input_ids"]]
    return answers, {"validation_loss": loss, "validation_perplexity": float(np.exp(loss)),
                     "cut_at_max_new_tokens_rate": float(np.mean([n >= gen.max_new_tokens for n in lengths]))}


def evaluate(run: Run) -> tuple[dict, pd.DataFrame]:
    """03_evaluate of a task run: the fine-tuned and the base model answer every test prompt; their
    scores, McNemar between them on the same prompts, and every answer in predictions.csv."""
    task = run.dataset.task
    splits = read_splits(run.data_folder)
    test = splits.test
    tokenizer = tokenizer_for(run)
    model = models.load_finetuned(run.model, run.adapter_dir, [], run.precision, run.preset.train.quantization)
    answers, extra = answer_all(run, model, tokenizer, test, splits.validation)
    del model
    metrics, per = score(task, answers, test)
    correct = per["correct"].to_numpy(dtype=bool)
    predictions = pd.DataFrame({"example": np.arange(len(test)), "text": test["text"], "reference": test["target"],
                                **({"group": test["group"]} if "group" in test else {}), "answer": answers})
    predictions = pd.concat([predictions, per], axis=1)
    record = {
        "task": task,
        "accuracy_is": ACCURACY_IS[task],
        **metrics,
        "accuracy_ci95": list(significance.bootstrap_ci(np.ones(len(correct), dtype=int), correct.astype(int),
                                                        significance.accuracy, seed=run.seed, vectorized=True)),
        **extra,
        "labels": [],
        "test_examples": len(test),
        "fingerprint": splits.fingerprint,
        "generation": {"decoding": "free", "max_new_tokens": run.preset.generation.max_new_tokens,
                       "batch_size": run.preset.generation.batch_size},
    }
    if run.preset.generation.compare_base:
        base_model = models.load_causal_lm(run.model, run.precision, run.preset.train.quantization)
        base_answers, base_extra = answer_all(run, base_model, tokenizer, test, splits.validation)
        del base_model
        base_metrics, base_per = score(task, base_answers, test)
        base_correct = base_per["correct"].to_numpy(dtype=bool)
        predictions["base_answer"] = base_answers
        predictions = pd.concat([predictions, base_per.add_prefix("base_")], axis=1)
        tuned_only, base_only, p_value = significance.mcnemar_exact(correct, base_correct)
        record["base"] = {**base_metrics, **base_extra}
        record.update(base_accuracy=base_metrics["accuracy"], p_vs_base=p_value,
                      base_validation_perplexity=base_extra["validation_perplexity"],
                      vs_base={"fine_tuned_only_correct": tuned_only, "base_only_correct": base_only,
                               "p_value": p_value},
                      baseline={"0-shot": {k: base_metrics[k] for k in SHOWN[task] if k in base_metrics}})
    atomic_write_text(run.run_dir / "predictions.csv", predictions.to_csv(index=False))
    run.write_stage("03_evaluate", record)
    return record, predictions


def headline(record: dict) -> pd.DataFrame:
    """Fine-tuned against base model, metric by metric (03_evaluate's first table for a task run)."""
    keys = (*SHOWN[record["task"]], "validation_loss", "validation_perplexity", "cut_at_max_new_tokens_rate")
    return pd.DataFrame({"fine-tuned": {k: record.get(k) for k in keys},
                         "base": {k: record.get("base", {}).get(k) for k in keys}}).round(4)


def side_by_side(predictions: pd.DataFrame, n: int = 6) -> pd.DataFrame:
    """A few test prompts with the reference, the fine-tuned and the base model's answers."""
    columns = ["text", "reference", "answer", "correct", *(["base_answer", "base_correct"] if "base_answer" in
                                                           predictions else [])]
    return predictions[columns].head(n)


def database_schema(run: Run, db_id: str | None, schema: str | None) -> str:
    """The CREATE TABLE statements an SQL prompt carries: given, or database `db_id`'s as the run's
    saved splits hold it (any split: a test database is as good as a training one here)."""
    if (db_id is None) == (schema is None):
        raise ConfigError(f"{run.run_dir} is a task: sql run: give the database, --db-id NAME (one the run's data "
                          f"holds) or --schema FILE (CREATE TABLE statements), one of the two")
    if schema is not None:
        try:  # a schema SQLite cannot build is named before any model loads
            sql.build(schema, "--schema").close()
        except sql.SqlSchemaError as exc:
            raise ConfigError(str(exc)) from None
        return schema
    splits = read_splits(run.data_folder)
    frames = [splits.split(name) for name in ("train", "validation", "test")]
    schemas = dict(zip(pd.concat([f["group"] for f in frames]), pd.concat([f["schema"] for f in frames]), strict=True))
    if db_id not in schemas:
        raise ConfigError(f"--db-id {db_id!r} is not a database of {run.run_dir}'s data; its databases: "
                          f"{sorted(schemas)}")
    return schemas[db_id]


def answer_texts(run: Run, texts: list[str], base: bool = False, schema: str | None = None) -> list[dict]:
    """`senticompare generate` on a task run: the fine-tuned model (and with `base` its base model)
    answering new instructions, or questions about the database whose `schema` is given (sql). An
    SQL answer comes with the query read from it, whether sqlglot parses it and whether it runs on the
    schema's empty database (the columns and tables it names exist)."""
    df = pd.DataFrame({"text": texts, **({"schema": schema} if run.dataset.task == "sql" else {})})
    tokenizer = tokenizer_for(run)
    gen = run.preset.generation
    asked = {"fine-tuned": lambda: models.load_finetuned(run.model, run.adapter_dir, [], run.precision,
                                                         run.preset.train.quantization)}
    if base:
        asked["base"] = lambda: models.load_causal_lm(run.model, run.precision, run.preset.train.quantization)
    rows = [{"text": text} for text in texts]
    database = sql.build(schema) if run.dataset.task == "sql" else None  # the schema, empty, read-only:
    if database is not None:                                               # one answer cannot change it for the next
        database.execute("PRAGMA query_only = 1")
    for name, load in asked.items():
        answers = decode.generate(load(), tokenizer, prompts(run, tokenizer, df), gen.max_new_tokens, gen.batch_size,
                                  run.device)
        for row, text in zip(rows, answers, strict=True):
            row[name] = {"answer": text}
            if database is not None:
                query = sql.extract_sql(text)
                row[name].update(query=query, parsed=bool(query) and sql.normalize(query) is not None,
                                 runs_on_schema=bool(query) and sql.execute(database, query).rows is not None)
    if database is not None:
        database.close()
    return rows


def speed(run: Run, model, tokenizer, test: pd.DataFrame) -> dict:
    """04_speed of a task run: generation speed on the test prompts (helpers/generate/speed.py)."""
    return measure_generation(model, tokenizer, prompts(run, tokenizer, test), run.preset.speed,
                              run.preset.generation, run.device)


def verdict(record: dict) -> str:
    """In words: the success rate with its CI and what it counts, and the base model against it."""
    low, high = record["accuracy_ci95"]
    text = (f"Accuracy {record['accuracy']:.3f} (95 % CI {low:.3f}-{high:.3f}) on {record['test_examples']} test "
            f"prompts: {record['accuracy_is']}.")
    if "vs_base" in record:
        vs = record["vs_base"]
        text += (f" The base model on the same prompts: {record['base_accuracy']:.3f}; "
                 f"{vs['fine_tuned_only_correct']} right only after fine-tuning, {vs['base_only_correct']} only "
                 f"before, exact McNemar p = {vs['p_value']:.2g}.")
    return text
