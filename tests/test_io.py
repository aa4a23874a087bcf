import numpy as np
import pytest

from helpers.core import io


def test_json_roundtrip_with_numpy_values(tmp_path):
    path = io.write_json(tmp_path / "r.json", {"a": np.float32(0.5), "b": np.arange(3), "c": float("nan")})
    assert io.read_json(path) == {"a": 0.5, "b": [0, 1, 2], "c": None}


def test_failed_write_keeps_the_previous_file(tmp_path):
    path = tmp_path / "results.json"
    io.write_json(path, {"accuracy": 0.9})
    with pytest.raises(TypeError):
        io.write_json(path, {"accuracy": object()})
    assert io.read_json(path) == {"accuracy": 0.9}
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]


def test_a_copy_of_the_tree_records_the_commit_it_was_named(monkeypatch):
    from helpers.core import environment

    monkeypatch.setenv("SENTICOMPARE_GIT_COMMIT", "84f271a6f17c6dbde658525bd0673b08cb84d9a7")
    assert environment.git_commit() == {"commit": "84f271a6f17c6dbde658525bd0673b08cb84d9a7", "dirty": None}
