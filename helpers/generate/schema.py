"""The JSON answer of a decision by generation, in one place:
`{"decision": <one of the labels or null>, "rationale": <string>, "abstain": <bool>}`.

The key order is part of the format: the decision comes first, so the labels' probabilities can be
read at one position right after `DECISION_PREFIX` (helpers/generate/decode.py), whatever the
model writes after it."""
from __future__ import annotations

import json
from typing import Literal

from pydantic import BaseModel, ConfigDict, create_model

DECISION_PREFIX = '{"decision": "'
NULL_DECISION = '{"decision": null'  # an abstention's first tokens: null where a label's quote would open


def answer_model(labels: list[str]) -> type[BaseModel]:
    """A pydantic model of the answer for these labels: the schema a valid answer follows."""
    return create_model(
        "Decision",
        __config__=ConfigDict(extra="forbid", strict=True),
        decision=(Literal[tuple(labels)] | None, ...),
        rationale=(str, ...),
        abstain=(bool, ...),
    )


def answer_schema(labels: list[str]) -> dict:
    """The JSON schema of the answer (for constrained decoding and the docs)."""
    return answer_model(labels).model_json_schema()


def render_answer(decision: str | None, rationale: str = "", abstain: bool = False) -> str:
    """The training target: the answer as the model should write it, decision first."""
    return json.dumps({"decision": decision, "rationale": rationale, "abstain": abstain}, ensure_ascii=False)
