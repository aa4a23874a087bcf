"""Instruction following: the prompt is the instruction itself (with its input), the target the
reference answer; a generated answer is scored against the reference by

- final-number match: the last number of the answer equals the last number of the reference
  (GSM8K's answers end with their result; a hub copy's `#### 72` line ends with it too)
- ROUGE-L (F-measure of the longest common subsequence of words, `rouge-score`, stemmed)
- the answer's length in words, beside the reference's

An answer is right (the task's per-example success, which McNemar and the CIs read) by its final
number where the reference has one, else when its ROUGE-L reaches `ROUGE_L_RIGHT`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache

NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")
ROUGE_L_RIGHT = 0.5  # a reference without a number: right at this ROUGE-L or above


def final_number(text: str) -> float | None:
    """The last number in the text (thousands separators dropped, a trailing period not part of it)."""
    found = NUMBER.findall(text or "")
    if not found:
        return None
    try:
        return float(found[-1].replace(",", ""))
    except ValueError:
        return None


@cache
def _scorer():
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)


def rouge_l(answer: str, reference: str) -> float:
    """ROUGE-L F-measure of the answer against the reference."""
    return float(_scorer().score(reference, answer)["rougeL"].fmeasure)


@dataclass(frozen=True)
class InstructionScore:
    """One answer against its reference."""
    correct: bool
    number: float | None  # the answer's final number
    number_match: bool | None  # None where the reference has no number
    rouge_l: float
    words: int


def score(answer: str, reference: str) -> InstructionScore:
    """The scores of the module docstring for one answer."""
    expected, found = final_number(reference), final_number(answer)
    match = None if expected is None else found is not None and abs(found - expected) < 1e-6
    rouge = rouge_l(answer, reference)
    return InstructionScore(correct=bool(match) if match is not None else rouge >= ROUGE_L_RIGHT, number=found,
                            number_match=match, rouge_l=rouge, words=len(answer.split()))


def instruction_metrics(scores: list[InstructionScore], references: list[str]) -> dict[str, float | int | None]:
    """A split's rates: the success rate, final-number match over the references with a number,
    mean ROUGE-L, and the answers' and references' mean length in words."""
    if not scores:
        raise ValueError("no answers to score")
    numbered = [s.number_match for s in scores if s.number_match is not None]
    return {"answers": len(scores), "success_rate": float(sum(s.correct for s in scores) / len(scores)),
            "final_number_match": float(sum(numbered) / len(numbered)) if numbered else None,
            "numbered_references": len(numbered), "rouge_l": float(sum(s.rouge_l for s in scores) / len(scores)),
            "answer_words": float(sum(s.words for s in scores) / len(scores)),
            "reference_words": float(sum(len(r.split()) for r in references) / len(references))}
