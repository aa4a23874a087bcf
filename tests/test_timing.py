import pytest

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
    assert {"loadavg_1m", "cpu_busy_percent_others", "cpus"} <= set(load)
    assert 0 <= load["cpu_busy_percent_others"] <= 100
