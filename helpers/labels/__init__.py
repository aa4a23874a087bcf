"""Label types beyond one class per text (a dataset entry's `label_type`): `multi` (a list of
classes per text: a sigmoid head, per-label thresholds, conformal label sets) and `regression` (k
numbers per text: a linear head on standardized targets, conformal intervals).

targets.py reads and encodes the labels, metrics.py scores them, conformal.py gives their sets and
intervals, stage.py is their 02_train / 03_evaluate, compare.py their paired tests.
"""
