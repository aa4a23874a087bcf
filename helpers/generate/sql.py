"""Text-to-SQL: the schema in the prompt, the query read from an answer, and the answer scored.

The schema is SQLite `CREATE TABLE` statements: rendered from a Spider `tables.json` entry (its
original table and column names, its types, primary and foreign keys) or given per row (e.g.
`sql_context` of gretelai/synthetic_text_to_sql). Spider ships no database files here, so a query
is executed on databases built from the schema and filled with generated rows: every table gets
seeded rows that respect the column types, primary keys (unique) and foreign keys (values of the
referenced column), with the literals of the database's gold queries mixed in so that their
`WHERE name = 'France'` can match. A prediction is right when its result equals the gold query's
on every filling (`FILLINGS` of them, the test-suite idea of Zhong et al. 2020): as a multiset
of rows, or as a list where the gold query orders its rows. Scores per answer:

- execution match (the task's per-example success): equal results on every filling
- executes: it runs without error on the first filling
- parsed: sqlglot parses it as SQLite
- exact match: sqlglot's normalized form equals the gold query's
"""
from __future__ import annotations

import random
import re
import sqlite3
from collections import Counter
from dataclasses import dataclass, field

import sqlglot
from sqlglot import exp

FILLINGS = (0, 1, 2)  # the seeds of the generated fillings a prediction must match the gold query on
ROWS = (6, 16)  # rows per table, drawn per table and filling
MAX_STEPS = 2_000_000  # SQLite VM steps before a query counts as an error (a runaway cross join)
SPIDER_TYPES = {"text": "TEXT", "number": "NUMERIC", "time": "TEXT", "boolean": "INTEGER", "others": "TEXT"}
INSTRUCTION = ("Database schema:\n{schema}\n\nQuestion: {question}\n"
               "Write one SQLite query that answers the question. Reply with the query only.")
SQL_START = re.compile(r"\b(SELECT|WITH)\b", re.IGNORECASE)
FENCE = re.compile(r"```(?:sql|sqlite)?\s*(.*?)(?:```|$)", re.IGNORECASE | re.DOTALL)


class SqlSchemaError(ValueError):
    """A schema that SQLite cannot build; the message names the database."""


def quote(name: str) -> str:
    """An identifier as SQLite reads it: bare when it is a plain word, else in double quotes."""
    return name if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name) else '"' + name.replace('"', '""') + '"'


def render_schema(db: dict) -> str:
    """A Spider tables.json entry as CREATE TABLE statements, one line per table."""
    tables = db["table_names_original"]
    columns = [(t, name, SPIDER_TYPES.get(kind, "TEXT"))
               for (t, name), kind in zip(db["column_names_original"], db["column_types"], strict=True)]
    keys = [k for group in db["primary_keys"] for k in (group if isinstance(group, list) else [group])]
    statements = []
    for index, table in enumerate(tables):
        if table.lower().startswith("sqlite_"):  # SQLite's own bookkeeping (sqlite_sequence), made by SQLite
            continue
        parts = [f"{quote(name)} {kind}" for t, name, kind in columns if t == index]
        primary = [quote(columns[k][1]) for k in keys if columns[k][0] == index]
        if primary:
            parts.append(f"PRIMARY KEY ({', '.join(primary)})")
        for source, target in db["foreign_keys"]:
            if columns[source][0] == index:
                parts.append(f"FOREIGN KEY ({quote(columns[source][1])}) REFERENCES "
                             f"{quote(tables[columns[target][0]])}({quote(columns[target][1])})")
        statements.append(f"CREATE TABLE {quote(table)} ({', '.join(parts)});")
    return "\n".join(statements)


def user_turn(question: str, schema: str) -> str:
    """The prompt's one user turn: the schema, the question, what to reply."""
    return INSTRUCTION.format(schema=schema, question=question)


def extract_sql(answer: str) -> str:
    """The query in a generated answer: inside a code fence where there is one, from its first
    SELECT or WITH, up to the first semicolon."""
    fenced = FENCE.search(answer)
    text = fenced.group(1) if fenced else answer
    start = SQL_START.search(text)
    text = text[start.start():] if start else text
    return " ".join(text.split(";")[0].split())


@dataclass(frozen=True)
class Column:
    name: str
    affinity: str  # INTEGER | REAL | TEXT | NUMERIC | BLOB, by SQLite's rules for the declared type
    primary: bool
    references: tuple[str, str] | None  # (table, column)


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[Column, ...]


def affinity(declared: str) -> str:
    """SQLite's type affinity of a declared column type (section 3.1 of its datatype documentation)."""
    kind = declared.upper()
    if "INT" in kind:
        return "INTEGER"
    if any(word in kind for word in ("CHAR", "CLOB", "TEXT")):
        return "TEXT"
    if not kind or "BLOB" in kind:
        return "BLOB"
    if any(word in kind for word in ("REAL", "FLOA", "DOUB")):
        return "REAL"
    return "NUMERIC"


def build(schema: str, name: str = "database") -> sqlite3.Connection:
    """An empty in-memory database from the schema's statements."""
    conn = sqlite3.connect(":memory:")
    try:
        conn.executescript(schema)
    except sqlite3.Error as exc:
        conn.close()
        raise SqlSchemaError(f"{name}: SQLite cannot build the schema ({exc}); check its CREATE TABLE "
                             f"statements") from exc
    return conn


def tables_of(conn: sqlite3.Connection) -> list[Table]:
    """Every table with its columns' affinity, primary key and foreign key, as SQLite read the schema."""
    names = [row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY rowid")]
    found = []
    for table in names:
        references = {row[3]: (row[2], row[4]) for row in conn.execute(f"PRAGMA foreign_key_list({quote(table)})")}
        columns = tuple(Column(name, affinity(declared or ""), bool(pk), references.get(name))
                        for _, name, declared, _, _, pk in conn.execute(f"PRAGMA table_info({quote(table)})"))
        found.append(Table(table, columns))
    return found


@dataclass
class Literals:
    """The values the gold queries of one database compare with, mixed into its generated rows."""
    texts: list[str] = field(default_factory=list)
    numbers: list[float] = field(default_factory=list)


def literals(queries: list[str]) -> Literals:
    """String and number literals of the queries (a LIKE pattern without its % signs)."""
    texts, numbers = set(), set()
    for query in queries:
        try:
            tree = sqlglot.parse_one(query, read="sqlite")
        except sqlglot.errors.ParseError:
            continue
        for literal in tree.find_all(exp.Literal):
            if literal.is_string:
                texts.add(literal.this.strip("%"))
            else:
                try:
                    numbers.add(float(literal.this))
                except ValueError:
                    continue
    return Literals(sorted(texts), sorted(numbers))


def _value(column: Column, rng: random.Random, found: Literals):
    """One generated value of the column's affinity; a literal of the gold queries a third of the time."""
    if column.affinity in ("INTEGER", "NUMERIC", "REAL"):
        if found.numbers and rng.random() < 1 / 3:
            return rng.choice(found.numbers)
        return round(rng.uniform(0, 100), 2) if column.affinity == "REAL" else rng.randint(0, 60)
    if found.texts and rng.random() < 1 / 3:
        return rng.choice(found.texts)
    if "date" in column.name.lower() or "time" in column.name.lower() or "year" in column.name.lower():
        return f"{rng.randint(1990, 2020)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
    return f"{column.name.lower()} {rng.randint(0, 4)}"  # few distinct values: GROUP BY and DISTINCT matter


def _order(tables: list[Table]) -> list[Table]:
    """Referenced tables before the tables that reference them (a cycle is filled as it comes)."""
    done: list[Table] = []
    by_name = {t.name.lower(): t for t in tables}

    def visit(table: Table, path: set[str]) -> None:
        if table in done or table.name.lower() in path:
            return
        for column in table.columns:
            parent = by_name.get(column.references[0].lower()) if column.references else None
            if parent is not None:
                visit(parent, path | {table.name.lower()})
        done.append(table)

    for table in tables:
        visit(table, set())
    return done


def fill(conn: sqlite3.Connection, seed: int, found: Literals) -> None:
    """Seeded rows in every table: primary keys unique, foreign keys drawn from the referenced
    column's values, the rest by affinity (`_value`); then the database is made read-only."""
    rng = random.Random(seed)
    values: dict[tuple[str, str], list] = {}
    for table in _order(tables_of(conn)):
        n = rng.randint(*ROWS)
        keys = [c for c in table.columns if c.primary]
        rows = []
        for i in range(n):
            row = []
            for column in table.columns:
                parent = values.get((column.references[0].lower(), column.references[1].lower())) \
                    if column.references else None
                if parent:
                    value = rng.choice(parent)
                elif column.primary and column == keys[0]:
                    value = i + 1 if column.affinity != "TEXT" else f"{column.name.lower()} {i + 1}"
                else:
                    value = _value(column, rng, found)
                row.append(value)
            rows.append(row)
        marks = ", ".join("?" * len(table.columns))
        conn.executemany(f"INSERT OR IGNORE INTO {quote(table.name)} VALUES ({marks})", rows)  # a repeated key
        for column in table.columns:
            values[(table.name.lower(), column.name.lower())] = [
                row[0] for row in conn.execute(f"SELECT {quote(column.name)} FROM {quote(table.name)}")]
    conn.commit()
    conn.execute("PRAGMA query_only = 1")  # a generated DROP or DELETE cannot change the filling


@dataclass
class Fillings:
    """One schema's databases, each filled with another seed's rows."""
    databases: list[sqlite3.Connection]

    def close(self) -> None:
        for conn in self.databases:
            conn.close()


def fillings(schema: str, gold_queries: list[str], name: str = "database") -> Fillings:
    """The schema built once per seed of FILLINGS, filled with the gold queries' literals mixed in."""
    found = literals(gold_queries)
    databases = []
    for seed in FILLINGS:
        conn = build(schema, name)
        fill(conn, seed, found)
        databases.append(conn)
    return Fillings(databases)


@dataclass(frozen=True)
class Outcome:
    rows: list[tuple] | None  # None when the query failed
    error: str | None = None


def execute(conn: sqlite3.Connection, query: str) -> Outcome:
    """The query's rows, or its error (a query past MAX_STEPS is stopped and counts as one)."""
    steps = {"n": 0}

    def progress() -> int:
        steps["n"] += 1000
        return int(steps["n"] > MAX_STEPS)

    conn.set_progress_handler(progress, 1000)
    try:
        return Outcome(conn.execute(query).fetchall())
    except (sqlite3.Error, sqlite3.Warning, ValueError, OverflowError) as exc:
        return Outcome(None, f"{type(exc).__name__}: {exc}")
    finally:
        conn.set_progress_handler(None, 0)


def _cell(value):
    return round(value, 6) if isinstance(value, float) else value


def same_result(gold: list[tuple], predicted: list[tuple], ordered: bool) -> bool:
    """Equal results: as lists where the gold query orders its rows, else as multisets."""
    gold = [tuple(map(_cell, row)) for row in gold]
    predicted = [tuple(map(_cell, row)) for row in predicted]
    return gold == predicted if ordered else Counter(gold) == Counter(predicted)


def orders(query: str) -> bool:
    """Whether the query's outermost SELECT orders its rows."""
    try:
        return sqlglot.parse_one(query, read="sqlite").args.get("order") is not None
    except sqlglot.errors.ParseError:
        return "order by" in query.lower()


def normalize(query: str) -> str | None:
    """sqlglot's canonical SQLite form (identifiers lower-cased), or None where it does not parse or
    sqlglot cannot write it back (a generated answer is any text: a repeated CREATE TABLE whose key
    names a column it lacks made sqlglot's SQLite writer raise KeyError in a Spider run)."""
    try:
        tree = sqlglot.parse_one(query.strip().rstrip(";"), read="sqlite")
        return None if tree is None else tree.sql(dialect="sqlite", normalize=True)
    except (sqlglot.errors.SqlglotError, LookupError, ValueError, TypeError, AttributeError):
        return None


@dataclass(frozen=True)
class SqlScore:
    """One answer against its gold query."""
    query: str  # the query read from the answer
    correct: bool  # equal results on every filling the gold query ran on
    executes: bool
    parsed: bool
    exact_match: bool
    gold_runs: bool  # the gold query ran on at least one filling
    gold_rows: bool  # and returned rows on at least one


def score(answer: str, gold: str, databases: Fillings) -> SqlScore:
    """The scores of the module docstring for one answer."""
    query = extract_sql(answer)
    ordered = orders(gold)
    gold_outcomes = [execute(conn, gold) for conn in databases.databases]
    predicted = [execute(conn, query) if query else Outcome(None, "empty") for conn in databases.databases]
    judged = [(g, p) for g, p in zip(gold_outcomes, predicted, strict=True) if g.rows is not None]
    correct = bool(judged) and all(p.rows is not None and same_result(g.rows, p.rows, ordered) for g, p in judged)
    normalized = normalize(query) if query else None
    return SqlScore(query=query, correct=correct, executes=predicted[0].rows is not None,
                    parsed=normalized is not None, exact_match=normalized is not None and normalized == normalize(gold),
                    gold_runs=bool(judged), gold_rows=any(g.rows for g, _ in judged))


def score_all(answers: list[str], golds: list[str], schemas: list[str], names: list[str]) -> list[SqlScore]:
    """Every answer scored on the fillings of its schema (built once per schema, with the literals
    of all the gold queries on it)."""
    queries: dict[str, list[str]] = {}
    for gold, schema in zip(golds, schemas, strict=True):
        queries.setdefault(schema, []).append(gold)
    built: dict[str, Fillings] = {}
    try:
        scores = []
        for answer, gold, schema, name in zip(answers, golds, schemas, names, strict=True):
            if schema not in built:
                built[schema] = fillings(schema, queries[schema], name)
            scores.append(score(answer, gold, built[schema]))
        return scores
    finally:
        for databases in built.values():
            databases.close()


def sql_metrics(scores: list[SqlScore]) -> dict[str, float | int]:
    """The rates of a split's scores; `gold_rows_rate` says how often the generated rows gave the
    gold query anything to return (an empty result matches more wrong queries)."""
    if not scores:
        raise ValueError("no answers to score")
    rates = {key: float(sum(getattr(s, attribute) for s in scores) / len(scores)) for key, attribute in (
        ("execution_accuracy", "correct"), ("executes_rate", "executes"), ("sql_parse_rate", "parsed"),
        ("exact_match", "exact_match"), ("gold_runs_rate", "gold_runs"), ("gold_rows_rate", "gold_rows"))}
    return {"answers": len(scores), **rates}
