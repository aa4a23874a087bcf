"""The bench's `allocator: keep-freed` (helpers/core/allocator.py), in fresh processes: the setting
is process-wide and lasts until the process ends, so it must not reach the test worker."""
import subprocess
import sys

import pytest

from helpers.core import allocator

# Blocks of 4-24 MiB allocated, written and freed, ten rounds after two to settle: the sizes of the
# baseline's padded activations, above glibc's starting mmap threshold (128 KiB) and below its
# largest (32 MiB). numpy's arrays of this size come straight from malloc.
PROBE = """
import resource, sys
import numpy as np
from helpers.core import allocator
allocator.use(sys.argv[1])
def rounds(n):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(n):
        blocks = [np.ones(mib * 2**17) for mib in (4, 8, 16, 24)]
        del blocks
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
rounds(2)
print(rounds(10))
"""

needs_glibc = pytest.mark.skipif(allocator._mallopt() is None, reason="glibc's malloc only (Linux)")


def page_faults(setting: str) -> int:
    out = subprocess.run([sys.executable, "-c", PROBE, setting], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[-1])


@needs_glibc
def test_keeping_freed_memory_stops_the_page_faults_of_reallocated_blocks():
    default, kept = page_faults("default"), page_faults("keep-freed")
    assert default > 1000, f"glibc's default gave back no freed block here ({default} faults): the premise changed"
    assert kept < 100  # measured: 0 against 15,250 by default (glibc 2.36, 2026-11-30)


def test_an_unknown_allocator_is_refused_before_anything_changes():
    with pytest.raises(ValueError, match=r"one of \['default', 'keep-freed'\]"):
        allocator.use("jemalloc")
