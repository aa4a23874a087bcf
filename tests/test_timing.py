import psutil
import pytest
import torch

from helpers.speed import timing


def test_summary_statistics_on_known_values():
    stats = timing.summarize([float(v) for v in range(1, 101)])
    assert stats.n == 100
    assert stats.median_ms == pytest.approx(50.5)
    assert stats.mean_ms == pytest.approx(50.5)
    assert stats.p99_ms == pytest.approx(99.01)
    assert (stats.min_ms, stats.max_ms) == (1.0, 100.0)


def test_summary_of_nothing_is_an_error():
    with pytest.raises(ValueError):
        timing.summarize([])


def test_time_calls_warms_up_then_times_each_repeat():
    calls = []
    times = timing.time_calls(lambda: calls.append(1), warmup=3, repeats=5)
    assert len(calls) == 8 and len(times) == 5
    assert all(t >= 0 for t in times)


def test_machine_load_is_recorded():
    load = timing.machine_load()
    assert {"loadavg_1m", "cpu_busy_percent_others", "cpus", "cross_core_ms"} <= set(load)
    assert 0 <= load["cpu_busy_percent_others"] <= 100


def test_the_cross_core_probe_runs_on_two_threads_and_puts_the_thread_count_back(monkeypatch):
    if (psutil.cpu_count() or 1) < 2:
        assert timing.cross_core_ms() is None
        return
    seen, time_calls = [], timing.time_calls

    def watched(fn, warmup, repeats):
        seen.append(torch.get_num_threads())
        return time_calls(fn, warmup, repeats)

    monkeypatch.setattr(timing, "time_calls", watched)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        probe = timing.cross_core_ms(repeats=2)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(threads)
    assert seen == [2] and probe > 0
