"""Stage 01_data: datasets read from their sources (sources, cache), checked (checks) and split
reproducibly (splits). The names below are the package's public interface."""
from helpers.data.records import SPLITS, DataError, DatasetSplits, Finding
from helpers.data.sources import group_values, load_standardized
from helpers.data.splits import fingerprint, load_splits, read_splits, save_splits

__all__ = ["SPLITS", "DataError", "DatasetSplits", "Finding", "fingerprint", "group_values", "load_splits",
           "load_standardized", "read_splits", "save_splits"]
