"""What every checked record of params/ shares: reading YAML, building a record from a mapping,
overriding some of its values, and the checks a record makes of itself.

Each record is a frozen dataclass that checks its own values in `__post_init__` (as peft's
`LoraConfig` does), so every way of making one (a YAML file, a study's `overrides:`, code, the
bench's params) is checked the same way, and the error names the key, the bad value and what is
allowed. `build` and `override` add where the values came from (file, section, key path).
"""
from __future__ import annotations

import dataclasses
import re
import types
import typing
from pathlib import Path
from typing import Any, Callable, Iterable

import yaml


class ConfigError(ValueError):
    """A params file or a name in it is wrong; the message says how to fix it."""


# Model, dataset and study ids become folder names and report headings: letters, digits and
# . _ - only, starting with a letter or digit (so no path separators, `..`, markup or spaces).
ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
ID_RULE = "an id of letters, digits, '.', '_' and '-' that starts with a letter or digit (at most 64 characters)"


def is_id(value: Any) -> bool:
    return isinstance(value, str) and ID_PATTERN.fullmatch(value) is not None


def read_yaml(path: str | Path) -> Any:
    """safe_load a file, turning a syntax error into one line that names the file and line."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: file not found")
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        raise ConfigError(f"{path}: malformed YAML{where}: {getattr(exc, 'problem', exc)}") from exc


def as_mapping(data: Any, where: str) -> dict:
    """`data` when it is a mapping; an empty YAML section (None) is an empty one."""
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping of keys to values, got {type(data).__name__} {data!r}")
    return data


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _nested(cls: type, name: str) -> type | None:
    """The record class of a field that holds a nested record (e.g. a preset's `train`)."""
    hint = _hints(cls).get(name)
    return hint if dataclasses.is_dataclass(hint) else None


def _nested_list(cls: type, name: str) -> type | None:
    """The record class of a field that holds a list of records (e.g. the bench's `datasets`)."""
    hint = _hints(cls).get(name)
    args = typing.get_args(hint) if typing.get_origin(hint) is list else ()
    return args[0] if args and dataclasses.is_dataclass(args[0]) else None


def _built(cls: type, name: str, value: Any, where: str) -> Any:
    """A field's value with nested mappings built into their records."""
    if _nested(cls, name) and isinstance(value, dict):
        return build(_nested(cls, name), value, f"{where}: {name}")
    if _nested_list(cls, name) and isinstance(value, list):
        return [build(_nested_list(cls, name), item, f"{where}: {name}[{i}]") for i, item in enumerate(value)]
    return value


def _allowed(cls: type, exclude: Iterable[str] = ()) -> list[str]:
    return sorted(f.name for f in dataclasses.fields(cls) if f.name not in set(exclude))


def build(cls: type, data: Any, where: str, **extra: Any):
    """A record of `cls` from a mapping: unknown and missing keys are refused, nested records (a
    mapping under a field whose type is a record) are built the same way, and the record's own
    checks run with `where` in front of their message. `extra` fills fields the mapping must not set."""
    data = as_mapping(data, where)
    unknown = sorted(set(data) - set(_allowed(cls, extra)))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; allowed: {_allowed(cls, extra)}")
    missing = [f.name for f in dataclasses.fields(cls)
               if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
               and f.name not in extra and f.name not in data]
    if missing:
        raise ConfigError(f"{where}: missing required key(s) {missing}")
    values = {name: _built(cls, name, value, where) for name, value in data.items()}
    try:
        return cls(**values, **extra)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def load_registry(cls: type, path: Path, kind: str) -> dict[str, Any]:
    """Every entry of a registry file (params/models.yaml, params/datasets.yaml) as a checked record
    whose `id` is its key."""
    entries = as_mapping(read_yaml(path), str(path))
    return {key: build(cls, data, f"{path}: {kind} {key!r}", id=key) for key, data in entries.items()}


def entry(registry: dict[str, Any], key: str, kind: str, file: str) -> Any:
    """One registry entry, or an error naming the file to add it to and the ids there are."""
    if key not in registry:
        raise ConfigError(f"unknown {kind} id {key!r}; add it to {file} or use one of {sorted(registry)}")
    return registry[key]


def override(record: Any, changes: Any, where: str):
    """A copy of `record` with `changes` applied (nested records take a mapping of their own
    changes), checked like a new record: e.g. a study's `overrides: {train: {max_steps: 4}}`."""
    changes = as_mapping(changes, where)
    cls = type(record)
    unknown = sorted(set(changes) - set(_allowed(cls)))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; allowed: {_allowed(cls)}")
    values = {name: override(getattr(record, name), value, f"{where}: {name}")
              if _nested(cls, name) and isinstance(value, dict) else value for name, value in changes.items()}
    try:
        return dataclasses.replace(record, **values)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _describe(hint: Any) -> str:
    return getattr(hint, "__name__", None) if not typing.get_args(hint) else str(hint).replace("typing.", "")


def _conforms(value: Any, hint: Any) -> bool:
    """Whether a value read from YAML has the field's declared type (an int is a float; a bool is no number)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_conforms(value, arg) for arg in args)
    if hint is type(None):
        return value is None
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if origin is list:
        return isinstance(value, list) and all(_conforms(v, args[0]) for v in value)
    if origin is dict:
        return isinstance(value, dict) and all(_conforms(k, args[0]) and _conforms(v, args[1])
                                               for k, v in value.items())
    return isinstance(value, origin or hint)


def check_types(record: Any) -> None:
    """Every field of the record has its declared type (YAML reads `1e-3` as text: write `1.0e-3`)."""
    problems = []
    for name, hint in _hints(type(record)).items():
        value = getattr(record, name)
        if not _conforms(value, hint):
            tip = ""
            if isinstance(value, str) and _conforms(1.0, hint):
                try:
                    float(value)
                    tip = " (YAML reads a number like 1e-3 as text; write 1.0e-3)"
                except ValueError:
                    pass
            problems.append(f"{name} must be {_describe(hint)}, got {value!r}{tip}")
    if problems:
        raise ConfigError("; ".join(problems))


Rule = tuple[str, str, Callable[[Any], bool]]  # field, what it must be, check of its value


def check(record: Any, rules: list[Rule]) -> None:
    """Types first, then each rule; every broken rule is named in one error."""
    check_types(record)
    problems = [f"{name} must be {rule}, got {getattr(record, name)!r}"
                for name, rule, ok in rules if not ok(getattr(record, name))]
    if problems:
        raise ConfigError("; ".join(problems))


def unique(values: list) -> bool:
    return len(set(values)) == len(values)


def one_of(allowed: Iterable[str]) -> tuple[str, Callable[[Any], bool]]:
    """A rule's text and test for a value from a fixed set."""
    allowed = sorted(allowed)
    return f"one of {allowed}", lambda value: value in allowed
