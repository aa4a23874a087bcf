"""A generated answer read back into a decision, however its JSON came out.

In order, each step tried only when the one before found nothing: drop chat-template tokens and
code fences; the first balanced `{...}` (string-aware) through `json.loads`; `json_repair` on the
text from the first `{` (single quotes, a missing brace, trailing commas, a truncated answer);
a regex on `"decision": "<label>"`. The decision matches a label case-insensitively. An answer
none of this reads is kept verbatim and counts as wrong (helpers/generate/metrics.py).
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass

from pydantic import ValidationError

from helpers.generate.schema import answer_model

TEMPLATE_TOKENS = re.compile(r"<\|[^|>]{1,40}\|>|</?(?:start_of_turn|end_of_turn|eos|bos|s)>")
FENCE = re.compile(r"```(?:json|JSON)?\s*(.*?)(?:```|$)", re.S)
DECISION_FIELD = re.compile(r"""["']?decision["']?\s*:\s*["']([^"']+)["']""", re.I)
ABSTAIN_FIELD = re.compile(r"""["']?abstain["']?\s*:\s*(true|false)""", re.I)


@dataclass(frozen=True)
class ParsedAnswer:
    raw: str  # the generated text, verbatim
    decision: str | None  # one of the labels, or None (abstained or unreadable)
    rationale: str | None
    abstain: bool
    how: str  # json | repaired | regex | none: the first step that read it
    schema_valid: bool  # the JSON object, as written, follows the answer schema

    @property
    def parsed(self) -> bool:
        """A JSON object was read (strictly or repaired)."""
        return self.how in {"json", "repaired"}


def clean(text: str) -> str:
    """The answer without chat-template tokens and code fences."""
    text = TEMPLATE_TOKENS.sub("", text)
    fenced = FENCE.search(text)
    return (fenced.group(1) if fenced else text).strip()


def first_object(text: str) -> str | None:
    """The first balanced {...} of the text, braces inside strings ignored; None if it never closes."""
    start = text.find("{")
    if start < 0:
        return None
    depth, quote, escaped = 0, None, False
    for i, char in enumerate(text[start:], start):
        if quote:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == quote:
                quote = None
        elif char == '"':
            quote = char
        elif char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                return text[start:i + 1]
    return None


def _label(value: object, labels: list[str]) -> str | None:
    if not isinstance(value, str):
        return None
    by_lower = {label.lower(): label for label in labels}
    return by_lower.get(value.strip().lower())


def _read_object(text: str) -> tuple[dict | None, str]:
    candidate = first_object(text)
    if candidate is not None:
        try:
            found = json.loads(candidate)
            if isinstance(found, dict):
                return found, "json"
        except json.JSONDecodeError:
            pass
    start = text.find("{")
    if start >= 0:
        from json_repair import repair_json  # imported here: the parser's fallback only

        found = repair_json(text[start:], return_objects=True)
        if isinstance(found, list):  # json_repair returns every object when the text holds several
            found = next((item for item in found if isinstance(item, dict)), None)
        if isinstance(found, dict) and found:
            return found, "repaired"
    return None, "none"


def parse_answer(text: str, labels: list[str]) -> ParsedAnswer:
    """The decision, rationale and abstention a generated answer gives (see the module docstring)."""
    body = clean(text)
    found, how = _read_object(body)
    if found is not None:
        try:
            answer_model(labels).model_validate(found)
            valid = how == "json"
        except ValidationError:
            valid = False
        abstain = found.get("abstain") is True
        decision = None if abstain else _label(found.get("decision"), labels)
        rationale = found.get("rationale") if isinstance(found.get("rationale"), str) else None
        return ParsedAnswer(text, decision, rationale, abstain, how, valid)
    field = DECISION_FIELD.search(body)
    if field:
        abstain = (m := ABSTAIN_FIELD.search(body)) is not None and m.group(1).lower() == "true"
        return ParsedAnswer(text, None if abstain else _label(field.group(1), labels), None, abstain, "regex", False)
    return ParsedAnswer(text, None, None, False, "none", False)
