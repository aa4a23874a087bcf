"""Instruction and text-to-SQL tasks: the schema as SQL, seeded generated rows, execution match on
known equal and different queries, SQL normalization, final-number extraction, ROUGE-L, the dataset
entries' checks, task splits from the mirror and the comparison's per-example correctness."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from helpers import config
from helpers.compare.runs import correctness
from helpers.config import ConfigError
from helpers.core.device import precision_for
from helpers.core.io import write_yaml
from helpers.data.records import DataError
from helpers.data.tasks import load_task_splits
from helpers.generate import chat, instruction, sft, sql
from helpers.train import models

SPIDER_LIKE = {
    "db_id": "shop",
    "table_names_original": ["customer", "order item", "sqlite_sequence"],
    "column_names_original": [[-1, "*"], [0, "id"], [0, "name"], [0, "city"], [0, "age"],
                              [1, "order id"], [1, "customer_id"], [1, "price"], [1, "placed"],
                              [2, "name"], [2, "seq"]],
    "column_types": ["text", "number", "text", "text", "number", "number", "number", "number", "time", "text",
                     "text"],
    "primary_keys": [1, 5],
    "foreign_keys": [[6, 1]],
}
GOLD = ["SELECT name FROM customer WHERE city = 'Paris'", "SELECT count(*) FROM customer WHERE age > 30"]


@pytest.fixture
def schema() -> str:
    return sql.render_schema(SPIDER_LIKE)


def test_a_spider_schema_becomes_create_table_statements_sqlite_builds(schema):
    assert schema.splitlines() == [
        "CREATE TABLE customer (id NUMERIC, name TEXT, city TEXT, age NUMERIC, PRIMARY KEY (id));",
        'CREATE TABLE "order item" ("order id" NUMERIC, customer_id NUMERIC, price NUMERIC, placed TEXT, '
        'PRIMARY KEY ("order id"), FOREIGN KEY (customer_id) REFERENCES customer(id));',
    ]  # SQLite's own sqlite_sequence is left out: SQLite refuses to create it
    tables = {t.name: t for t in sql.tables_of(sql.build(schema))}
    assert [(c.name, c.affinity, c.primary) for c in tables["customer"].columns] == [
        ("id", "NUMERIC", True), ("name", "TEXT", False), ("city", "TEXT", False), ("age", "NUMERIC", False)]
    assert tables["order item"].columns[1].references == ("customer", "id")


def test_a_schema_sqlite_cannot_build_names_the_database():
    with pytest.raises(sql.SqlSchemaError, match="shop: SQLite cannot build"):
        sql.build("CREATE TABLE broken (", "shop")


def rows(conn, table: str) -> list[tuple]:
    return conn.execute(f"SELECT * FROM {sql.quote(table)} ORDER BY rowid").fetchall()


def test_the_filling_is_seeded_and_respects_keys_and_types(schema):
    found = sql.literals(GOLD)
    assert found.texts == ["Paris"] and found.numbers == [30.0]
    a, b, c = (sql.build(schema) for _ in range(3))
    sql.fill(a, 0, found)
    sql.fill(b, 0, found)
    sql.fill(c, 1, found)
    assert rows(a, "customer") == rows(b, "customer") and rows(a, "order item") == rows(b, "order item")
    assert rows(a, "customer") != rows(c, "customer")
    customers = rows(a, "customer")
    ids = [r[0] for r in customers]
    assert ids == list(range(1, len(ids) + 1)) and sql.ROWS[0] <= len(ids) <= sql.ROWS[1]
    assert all(isinstance(r[3], int) for r in customers) and all(isinstance(r[1], str) for r in customers)
    assert {r[1] for r in rows(a, "order item")} <= set(ids)  # foreign keys point at real customers
    cities = {r[2] for filling in (a, c) for r in rows(filling, "customer")}
    assert "Paris" in cities  # the gold queries' literals are mixed in, so their WHERE can match
    with pytest.raises(Exception, match="readonly"):
        a.execute("DELETE FROM customer")  # a generated DELETE cannot change the filling


def score(answer: str, gold: str, schema: str) -> sql.SqlScore:
    return sql.score_all([answer], [gold], [schema], ["shop"])[0]


@pytest.mark.parametrize("answer", [
    "SELECT T1.name FROM customer AS T1 WHERE T1.city = 'Paris'",  # aliases
    "select name from customer where city='Paris' and 1 = 1",  # another query, the same rows
    "```sql\nSELECT name FROM customer WHERE 'Paris' = city;\n```",  # in a fence, a semicolon
])
def test_equivalent_queries_match_on_every_filling(answer, schema):
    assert score(answer, GOLD[0], schema).correct


@pytest.mark.parametrize("answer", [
    "SELECT name FROM customer",  # no filter
    "SELECT city FROM customer WHERE city = 'Paris'",  # another column
    "SELECT name FROM customer WHERE city = 'Paris' LIMIT 1",
    "SELECT nme FROM customer",  # does not run
    "I do not know.",
])
def test_different_queries_do_not(answer, schema):
    assert not score(answer, GOLD[0], schema).correct


def test_order_counts_where_the_gold_query_orders(schema):
    gold = "SELECT name, age FROM customer ORDER BY age, name"
    assert score("SELECT name, age FROM customer ORDER BY age ASC, name ASC", gold, schema).correct
    assert not score("SELECT name, age FROM customer ORDER BY age DESC, name", gold, schema).correct
    assert score("SELECT name, age FROM customer ORDER BY age DESC", "SELECT name, age FROM customer", schema).correct


def test_the_scores_of_one_answer(schema):
    found = score("Here it is: SELECT  NAME from customer where city = 'Paris'", GOLD[0], schema)
    assert (found.query, found.correct, found.executes, found.parsed, found.exact_match) == (
        "SELECT NAME from customer where city = 'Paris'", True, True, True, True)
    broken = score("SELECT name FROM customer WHERE", GOLD[0], schema)
    assert (broken.executes, broken.parsed, broken.exact_match) == (False, False, False)
    metrics = sql.sql_metrics([found, broken])
    assert metrics["execution_accuracy"] == metrics["executes_rate"] == metrics["exact_match"] == 0.5


def test_normalization_ignores_case_spacing_and_a_semicolon():
    same = sql.normalize("SELECT name\nFROM singer WHERE age > 3")
    assert sql.normalize("select  Name FROM singer where AGE>3;") == same
    assert sql.normalize("SELECT name FROM singer WHERE age > 3") != sql.normalize("SELECT name FROM singer")
    assert sql.normalize("SELECT FROM WHERE (") is None
    # an answer that repeats the schema: sqlglot parses it but cannot write it back (KeyError)
    repeated = 'CREATE TABLE "airports" ("City" TEXT, "AirportCode" TEXT, PRIMARY KEY ("airlines"))'
    assert sql.normalize(repeated) is None
    assert sql.score(repeated, "SELECT count(*) FROM airports", sql.fillings(
        'CREATE TABLE "airports" ("City" TEXT, "AirportCode" TEXT)', [])).parsed is False


def test_every_spider_gold_query_runs_and_matches_itself(mirror_path):
    tables = {db["db_id"]: db for db in json.loads((mirror_path / "spider" / "tables.json").read_text())}
    dev = json.loads((mirror_path / "spider" / "dev.json").read_text())[::10]
    schemas = [sql.render_schema(tables[x["db_id"]]) for x in dev]
    golds = [x["query"] for x in dev]
    metrics = sql.sql_metrics(sql.score_all(golds, golds, schemas, [x["db_id"] for x in dev]))
    assert metrics["execution_accuracy"] == metrics["exact_match"] == metrics["gold_runs_rate"] == 1.0
    assert metrics["gold_rows_rate"] > 0.7  # the generated rows give most gold queries something to return


@pytest.mark.parametrize("text, number", [
    ("She sold 48 + 24 = 72 clips altogether.", 72.0),
    ("The total is $1,234.50.", 1234.5),
    ("It dropped to -3 degrees", -3.0),
    ("Half of it.\n#### 18", 18.0),
    ("no number here", None),
    ("", None),
])
def test_the_final_number_is_the_last_one(text, number):
    assert instruction.final_number(text) == number


def test_rouge_l_by_hand():
    assert instruction.rouge_l("the cat sat on the mat", "the cat sat on the mat") == 1.0
    assert instruction.rouge_l("dogs bark", "the cat sat on the mat") == 0.0
    # longest common subsequence 3 words: precision 3/3, recall 3/6, F = 2 * 1 * 0.5 / 1.5
    assert instruction.rouge_l("the cat sat", "the cat sat on the mat") == pytest.approx(2 / 3)


def test_an_answer_is_right_by_its_final_number_else_by_rouge_l():
    assert instruction.score("So 20 - 19 = 1 rose is left.", "Ian kept 20 - 19 = 1 rose.").correct
    assert not instruction.score("Ian kept 19 roses.", "Ian kept 20 - 19 = 1 rose.").correct
    assert instruction.score("They are opposites.", "The pairs are opposites.").number_match is None
    assert instruction.score("They are opposites.", "The pairs are opposites.").correct  # ROUGE-L 0.75
    found = [instruction.score("It is 4.", "2 + 2 = 4"), instruction.score("Paris", "The capital is Paris")]
    metrics = instruction.instruction_metrics(found, ["2 + 2 = 4", "The capital is Paris"])
    assert metrics["final_number_match"] == 1.0 and metrics["numbered_references"] == 1
    assert metrics["success_rate"] == 0.5 and metrics["answer_words"] == 2.0


def entry(tmp_path, **fields) -> config.DatasetSpec:
    registry = write_yaml(tmp_path / "datasets.yaml", {"mine": {"source": "mirror", "mirror": {"folder": "x"},
                                                                **fields}})
    return config.load_datasets(registry)["mine"]


@pytest.mark.parametrize("fields, message", [
    ({"task": "instruction", "labels": ["a", "b"]}, "labels: only for classification"),
    ({"task": "sql"}, "needs exactly one of schema_file"),
    ({"task": "sql", "schema_file": "t.json", "schema_column": "ddl"}, "needs exactly one of schema_file"),
    ({"task": "instruction", "schema_file": "t.json"}, "schema_file: only for task: sql"),
    ({"labels": ["a", "b"]}, "a classification dataset needs text_column and label_column"),
    ({"text_column": "t", "label_column": "l", "labels": ["a"]}, "at least two class names"),
    ({"task": "translation"}, "task must be one of"),
])
def test_a_dataset_entry_says_what_its_task_needs(tmp_path, fields, message):
    with pytest.raises(ConfigError, match=message):
        entry(tmp_path, **fields)


def preset(**caps):
    return config.apply_overrides(config.load_preset("tiny"), caps)


def test_spider_tests_on_databases_never_seen_in_training(mirror):
    spec = config.get_dataset("spider")
    splits = load_task_splits(spec, preset(max_train=64, max_test=40), seed=3)
    test_dbs = set(splits.test["group"])
    assert test_dbs and not test_dbs & (set(splits.train["group"]) | set(splits.validation["group"]))
    assert splits.test["schema"].str.startswith("CREATE TABLE").all() and splits.calibration.empty
    assert (len(splits.train), len(splits.test)) == (64, 40)
    again = load_task_splits(spec, preset(max_train=64, max_test=40), seed=3)
    assert again.fingerprint == splits.fingerprint and again.test.equals(splits.test)
    other = load_task_splits(spec, preset(max_train=64, max_test=40), seed=4)
    assert other.fingerprint != splits.fingerprint


def test_gsm8k_reads_alpaca_records_and_plain_input_output_ones_read_too(mirror, tmp_path):
    splits = load_task_splits(config.get_dataset("gsm8k"), preset(max_train=32, max_test=20), seed=1)
    assert instruction.final_number(splits.test["target"].iloc[0]) is not None
    records = pd.DataFrame({"input": [f"What is {i} plus {i}?" for i in range(60)],
                            "output": [f"{i} + {i} = {2 * i}" for i in range(60)]})
    records.to_json(tmp_path / "pairs.jsonl", orient="records", lines=True)
    registry = write_yaml(tmp_path / "datasets.yaml", {"pairs": {"task": "instruction", "source": "file",
                                                                 "path": str(tmp_path / "pairs.jsonl")}})
    plain = load_task_splits(config.load_datasets(registry)["pairs"], preset(), seed=1)
    assert plain.test["text"].str.startswith("What is").all() and plain.test["target"].str.contains("=").all()
    changed = records.assign(output=records["output"] + ".")
    changed.to_json(tmp_path / "pairs.jsonl", orient="records", lines=True)
    assert load_task_splits(config.load_datasets(registry)["pairs"], preset(), seed=1).fingerprint != plain.fingerprint


def test_a_task_dataset_without_a_known_layout_names_the_fix(tmp_path):
    pd.DataFrame({"q": ["a"] * 20, "a": ["b"] * 20}).to_json(tmp_path / "odd.jsonl", orient="records", lines=True)
    registry = write_yaml(tmp_path / "datasets.yaml", {"odd": {"task": "instruction", "source": "file",
                                                               "path": str(tmp_path / "odd.jsonl")}})
    with pytest.raises(DataError, match="name its prompt and answer columns as text_column and label_column"):
        load_task_splits(config.load_datasets(registry)["odd"], preset(), seed=1)


def test_the_comparison_reads_a_correct_column_where_there_is_one(tmp_path):
    for run, correct in (("a", [1, 0, 1]), ("b", [0, 0, 1])):
        (tmp_path / run).mkdir()
        pd.DataFrame({"example": [2, 0, 1], "correct": correct}).to_csv(tmp_path / run / "predictions.csv")
    table = pd.DataFrame({"model": ["a", "b"], "run": ["a", "b"], "data_fingerprint": ["f", "f"]})
    found = correctness(tmp_path, table)
    np.testing.assert_array_equal(found["a"], [False, True, True])  # in example order
    np.testing.assert_array_equal(found["b"], [False, True, False])


def test_the_answer_loss_is_the_models_loss_on_the_answer_tokens():
    spec = config.get_model("smollm2-135m-sft")
    tokenizer = chat.use_chat_template(models.load_tokenizer(spec), spec)
    model = models.load_causal_lm(spec, precision_for("cpu")).eval()
    examples = [chat.sft_example(tokenizer, sql.user_turn("How many customers?", "CREATE TABLE customer (id INT);"),
                                 "SELECT count(*) FROM customer"),
                chat.sft_example(tokenizer, "What is 2 + 2?", "2 + 2 = 4")]
    loss = sft.answer_loss(model, tokenizer, examples, batch_size=2, device="cpu")
    with torch.no_grad():
        losses = [model(input_ids=torch.tensor([e["input_ids"]]), labels=torch.tensor([e["labels"]])).loss.item()
                  for e in examples]
    answers = [sum(label != chat.IGNORE for label in e["labels"]) for e in examples]
    assert loss == pytest.approx(np.average(losses, weights=answers), rel=1e-4)
