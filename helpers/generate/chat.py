"""Prompts through the model's chat template, and supervised examples with the prompt masked.

The prompt is one user turn: the instruction, the labels and the text; the answer is the
assistant's turn (helpers/generate/schema.py). A tokenizer without a template gets the one its
model entry names in params/chat_templates.yaml (`gemma`), else `plain`. The preset's max_length
caps the text's own tokens (from the side its truncation_side keeps), as it does for a classifier:
a head and a generator read the same words, and the prompt and answer come on top. The loss covers
the answer tokens only, the end-of-turn token included, so the model learns to stop.
"""
from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

from helpers.config import ConfigError, ModelSpec, read_yaml
from helpers.core.paths import PARAMS_DIR

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

CHAT_TEMPLATES = PARAMS_DIR / "chat_templates.yaml"
IGNORE = -100  # the label of a token the loss skips (the prompt's)
INSTRUCTION = (
    "{question}\n"
    'Reply with JSON only: {{"decision": the label, "rationale": the words of the text that show it, '
    '"abstain": false}}; if no label fits, {{"decision": null, "rationale": "", "abstain": true}}.\n\n'
    "Text: {text}"
)
DEFAULT_QUESTION = "Label the text: {labels}."


@cache
def _templates() -> dict[str, str]:
    return read_yaml(CHAT_TEMPLATES)


def use_chat_template(tokenizer: PreTrainedTokenizerBase, spec: ModelSpec) -> PreTrainedTokenizerBase:
    """Give the tokenizer the template its model entry names where it has none of its own."""
    if tokenizer.chat_template:
        return tokenizer
    name = spec.chat_template or "plain"
    templates = _templates()
    if name not in templates:
        raise ConfigError(f"model {spec.id!r}: chat_template {name!r} is not in {CHAT_TEMPLATES}; use one of "
                          f"{sorted(templates)} or add it there")
    tokenizer.chat_template = templates[name]
    return tokenizer


def user_turn(text: str, labels: list[str], question: str | None = None) -> str:
    """The prompt's one user turn for a decision on `text`."""
    shown = ", ".join(labels)
    return INSTRUCTION.format(question=question or DEFAULT_QUESTION.format(labels=shown), labels=shown, text=text)


def render_prompt(tokenizer: PreTrainedTokenizerBase, user: str) -> str:
    """The prompt as the model sees it, ending where the answer starts."""
    return tokenizer.apply_chat_template([{"role": "user", "content": user}], tokenize=False,
                                         add_generation_prompt=True)


def _answer_text(tokenizer: PreTrainedTokenizerBase, user: str, answer: str) -> tuple[str, str]:
    prompt = render_prompt(tokenizer, user)
    full = tokenizer.apply_chat_template([{"role": "user", "content": user}, {"role": "assistant", "content": answer}],
                                         tokenize=False)
    if not full.startswith(prompt):
        raise ConfigError("the chat template renders the prompt differently inside a conversation than on its own "
                          "(add_generation_prompt); give the model entry a chat_template of params/chat_templates.yaml")
    return prompt, full[len(prompt):]


def _ids(tokenizer: PreTrainedTokenizerBase, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def fit_text(tokenizer: PreTrainedTokenizerBase, text: str, budget: int) -> str:
    """The text cut to `budget` of its own tokens, from the side the tokenizer truncates."""
    ids = _ids(tokenizer, text)
    if len(ids) <= budget:
        return text
    kept = ids[-budget:] if tokenizer.truncation_side == "left" else ids[:budget]
    return tokenizer.decode(kept)


def prompts(tokenizer: PreTrainedTokenizerBase, texts: list[str], labels: list[str], question: str | None,
            max_length: int) -> list[str]:
    """Every text's prompt, the text cut to max_length of its own tokens."""
    return [render_prompt(tokenizer, user_turn(fit_text(tokenizer, t, max_length), labels, question)) for t in texts]


def sft_example(tokenizer: PreTrainedTokenizerBase, user: str, answer: str) -> dict[str, list[int]]:
    """input_ids, attention_mask and labels of one supervised example: the prompt's labels IGNORE."""
    prompt, answer_text = _answer_text(tokenizer, user, answer)
    prompt_ids, answer_ids = _ids(tokenizer, prompt), _ids(tokenizer, answer_text)
    return {"input_ids": prompt_ids + answer_ids, "attention_mask": [1] * (len(prompt_ids) + len(answer_ids)),
            "labels": [IGNORE] * len(prompt_ids) + answer_ids}


def sft_examples(tokenizer: PreTrainedTokenizerBase, texts: list[str], answers: list[str], labels: list[str],
                 question: str | None, max_length: int) -> list[dict[str, list[int]]]:
    """Supervised examples of every text (cut to max_length of its own tokens) with its answer."""
    return [sft_example(tokenizer, user_turn(fit_text(tokenizer, text, max_length), labels, question), answer)
            for text, answer in zip(texts, answers, strict=True)]
