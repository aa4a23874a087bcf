"""Adapters loaded for the API, kept in memory: loading one (base model, LoRA, tokenizer, decision
rules) takes seconds, a few texts take milliseconds. The newest `size` stay loaded; a rerun or
replaced adapter (its registry record's `created` changed) is loaded again. One prediction runs
at a time: the model's own threads use the cores, and two at once would only take turns on them."""
from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

from helpers.adapters import registry
from helpers.adapters.predict import AdapterPredictor, load_predictor
from helpers.adapters.registry import AdapterRecord

DEFAULT_SIZE = 4


class PredictorCache:
    def __init__(self, size: int = DEFAULT_SIZE, int8: str | None = None) -> None:
        self.size = size
        self.int8 = int8  # every adapter's body in this int8 mode (helpers/evaluate/quantize.py), or as trained
        self._loaded: OrderedDict[str, tuple[str, AdapterPredictor]] = OrderedDict()
        self._lock = threading.Lock()

    def _get(self, record: AdapterRecord) -> AdapterPredictor:
        cached = self._loaded.get(record.id)
        if cached is not None and cached[0] == record.created:
            self._loaded.move_to_end(record.id)
            return cached[1]
        self._loaded.pop(record.id, None)
        while len(self._loaded) >= self.size:
            self._loaded.popitem(last=False)
        predictor = load_predictor(record.id, self.int8)
        self._loaded[record.id] = (record.created, predictor)
        return predictor

    def predict(self, adapter: str, texts: list[str]) -> tuple[AdapterRecord, list[dict[str, Any]]]:
        """The adapter's record and its decided rows for `texts`, in their order (helpers/adapters/predict.py)."""
        record = registry.finished_run(adapter)
        with self._lock:
            return record, self._get(record).predict(texts)

    def loaded(self) -> list[str]:
        return list(self._loaded)
