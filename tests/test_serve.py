"""The local API on tiny real runs, through FastAPI's test client: studies trained by POST /train as
queued background jobs (the CLI's own `senticompare run` in a subprocess), then /adapters,
/predict and /generate against the runs' own predictions, /merge as a job, cancelling, a restarted
server, reports. The security rules have their own tests (test_serve_security.py)."""
from __future__ import annotations

import subprocess
import sys
import time

import numpy as np
import pandas as pd
import psutil
import pytest
import yaml
from fastapi.testclient import TestClient

from helpers.core import paths
from helpers.data.splits import read_splits
from helpers.serve.app import ServeSettings, create_app
from helpers.serve.jobs import JobStore, read_log

BASE_URL = "http://127.0.0.1:8000"
TINY = {"max_train": 32, "max_validation": 16, "max_calibration": 16, "max_test": 16,
        "train": {"max_steps": 2, "batch_size": 16}, "evaluation": {"baseline_shots": []},
        "speed": {"warmup": 1, "repeats": 1, "max_examples": 4, "batch_size": 4}}
HEADS = {"name": "tiny_serve", "models": ["smollm2-135m"], "datasets": ["sst2", "uci_yelp"], "preset": "tiny",
         "seeds": [7], "overrides": TINY}
GENERATOR = {"name": "tiny_serve_json", "models": ["smollm2-135m-json"], "datasets": ["sst2"], "preset": "tiny",
             "seeds": [7], "overrides": {**TINY, "max_validation": 10, "max_calibration": 10, "max_test": 10,
                                         "generation": {"max_new_tokens": 16, "compare_base": False, "batch_size": 4},
                                         "speed": {"warmup": 0, "repeats": 1, "max_examples": 2, "batch_size": 2}}}
SST2, YELP, JSON = ("tiny_serve/sst2/smollm2-135m", "tiny_serve/uci_yelp/smollm2-135m",
                    "tiny_serve_json/sst2/smollm2-135m-json")
DONE = ("succeeded", "failed", "cancelled", "interrupted")


def wait_for(client: TestClient, job_id: int, timeout_s: float = 1800, seen: list | None = None) -> dict:
    """Poll GET /jobs/{id} until the job has ended; `seen` collects every view of it meanwhile."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job = client.get(f"/jobs/{job_id}").json()
        if seen is not None:
            seen.append(job)
        if job["state"] in DONE:
            return job
        time.sleep(1)
    raise AssertionError(f"job {job_id} still {job['state']} after {timeout_s} s: {job['log_tail']}")


@pytest.fixture(scope="module")
def served(mirror_path):
    """A server (its job runner started) that has trained the head study and then the generator
    study, submitted together: the second waits in the queue. Yields the client and what was seen."""
    mp = pytest.MonkeyPatch()
    mp.setenv("SENTICOMPARE_DATA_DIR", str(mirror_path))  # the jobs' subprocesses inherit it
    with TestClient(create_app(ServeSettings()), base_url=BASE_URL) as client:
        first = client.post("/train", json={"study_yaml": yaml.safe_dump(HEADS), "report": False})
        second = client.post("/train", json={"study_yaml": yaml.safe_dump(GENERATOR), "report": False})
        assert first.status_code == second.status_code == 202, (first.text, second.text)
        queued = client.get("/jobs").json()
        seen: list[dict] = []
        finished = [wait_for(client, first.json()["id"], seen=seen), wait_for(client, second.json()["id"])]
        yield client, {"submitted": (first.json(), second.json()), "queued": queued, "seen": seen,
                       "finished": finished}
    mp.undo()


@pytest.mark.slow
@pytest.mark.full
def test_trainings_run_one_at_a_time_and_register_their_adapters(served):
    client, jobs = served
    first, second = jobs["submitted"]
    assert first["state"] == second["state"] == "queued" and first["kind"] == "train"
    assert first["title"] == "train tiny_serve: smollm2-135m × sst2, uci_yelp (tiny)"
    listed = {job["id"]: job["state"] for job in jobs["queued"]}
    assert listed[second["id"]] == "queued"  # the first one holds the only slot
    running = [job for job in jobs["seen"] if job["state"] == "running"]
    assert running and all(job["id"] != second["id"] for job in running)
    assert any(job["progress"] is not None and 0 <= job["progress"] <= 1 and "smollm2-135m 0" in job["stage"]
               for job in running), [(j["stage"], j["progress"]) for j in running]
    trained, generator = jobs["finished"]
    assert trained["state"] == "succeeded" and trained["returncode"] == 0, trained["log_tail"]
    assert generator["state"] == "succeeded", generator["log_tail"]
    assert trained["adapters"] == [SST2, YELP] and generator["adapters"] == [JSON]
    assert trained["started"] <= generator["started"] and trained["finished"] <= generator["started"]
    assert "study tiny_serve: 2 run(s) done, 0 reused, 0 failed" in trained["log_tail"], trained["log_tail"]
    adapters = {a["id"]: a for a in client.get("/adapters").json()}
    assert {SST2, YELP, JSON} <= set(adapters) and adapters[JSON]["method"] == "generate"
    assert adapters[SST2]["labels"] == ["negative", "positive"] and adapters[SST2]["present"]


@pytest.mark.slow
@pytest.mark.full
def test_predict_gives_each_adapters_own_probabilities_side_by_side(served):
    client, _ = served
    runs = {a: paths.experiments_dir() / a for a in (SST2, YELP)}
    texts = read_splits(runs[SST2] / "data").test["text"].tolist()[:6]
    response = client.post("/predict", json={"adapters": [SST2, YELP], "texts": texts})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["texts"] == texts and [r["adapter"] for r in body["results"]] == [SST2, YELP]
    expected = pd.read_csv(runs[SST2] / "predictions.csv").head(6)
    sst2 = body["results"][0]
    assert sst2["method"] == "head" and sst2["labels"] == ["negative", "positive"]
    for row, (_, want) in zip(sst2["predictions"], expected.iterrows(), strict=True):
        assert row["probabilities"] == pytest.approx({"negative": want["prob_negative"],
                                                      "positive": want["prob_positive"]}, abs=1e-5)
        assert row["label"] == sst2["labels"][int(want["prediction"])] and row["generated"] is None
    yelp = np.array([[r["probabilities"][k] for k in ("negative", "positive")]
                     for r in body["results"][1]["predictions"]])
    assert np.allclose(yelp.sum(axis=1), 1) and not np.allclose(yelp, expected[["prob_negative", "prob_positive"]])


@pytest.mark.slow
@pytest.mark.full
def test_generate_writes_the_generative_adapters_answers(served):
    client, _ = served
    run = paths.experiments_dir() / JSON
    texts = read_splits(run / "data").test["text"].tolist()[:3]
    response = client.post("/generate", json={"adapters": [JSON], "texts": texts})
    assert response.status_code == 200, response.text
    rows = response.json()["results"][0]["predictions"]
    expected = pd.read_csv(run / "predictions.csv", keep_default_na=False).head(3)
    assert [r["generated"]["answer"] for r in rows] == expected["answer"].tolist()
    for row, (_, want) in zip(rows, expected.iterrows(), strict=True):
        assert row["probabilities"]["positive"] == pytest.approx(want["prob_positive"], abs=1e-5)
    refused = client.post("/generate", json={"adapters": [SST2], "texts": ["fine"]})
    assert refused.status_code == 422 and "classify with a head and write no answer" in refused.json()["detail"]


@pytest.mark.slow
@pytest.mark.full
def test_merge_runs_as_a_job_and_its_adapter_predicts(served):
    client, _ = served
    request = {"adapters": [{"id": SST2, "weight": 0.5}, {"id": YELP, "weight": 0.5}], "method": "ties",
               "out_id": "served"}
    response = client.post("/merge", json=request)
    assert response.status_code == 202, response.text
    job = wait_for(client, response.json()["id"], timeout_s=600)
    assert job["state"] == "succeeded", job["log_tail"]
    assert job["adapters"] == ["merged/sst2/served"] and job["kind"] == "merge"
    assert any(line.startswith("merge: merging with ties (density 0.5)") for line in job["log_tail"])
    predicted = client.post("/predict", json={"adapters": ["merged/sst2/served"], "texts": ["a wonderful film"]})
    assert predicted.status_code == 200 and predicted.json()["results"][0]["labels"] == ["negative", "positive"]
    again = client.post("/merge", json=request)
    assert again.status_code == 422 and "force: true to replace it" in again.json()["detail"]
    mixed = client.post("/merge", json={**request, "adapters": [{"id": SST2, "weight": 1}, {"id": JSON, "weight": 1}]})
    assert mixed.status_code == 422 and "different method" in mixed.json()["detail"]


@pytest.mark.slow
@pytest.mark.full
def test_a_queued_job_and_a_running_one_can_be_cancelled(served):
    client, _ = served
    study = {**HEADS, "name": "tiny_cancelled", "datasets": ["sst2"]}
    running = client.post("/train", json={"study_yaml": yaml.safe_dump(study), "report": False}).json()
    queued = client.post("/train", json={"study_yaml": yaml.safe_dump({**study, "name": "tiny_never"})}).json()
    cancelled = client.post(f"/jobs/{queued['id']}/cancel", json={}).json()
    assert cancelled["state"] == "cancelled"
    deadline = time.monotonic() + 60
    while client.get(f"/jobs/{running['id']}").json()["state"] == "queued" and time.monotonic() < deadline:
        time.sleep(0.5)
    pid = JobStore().get(running["id"]).pid
    assert client.post(f"/jobs/{running['id']}/cancel", json={}).status_code == 200
    job = wait_for(client, running["id"], timeout_s=60)
    assert job["state"] == "cancelled" and job["error"] == "cancelled"
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert client.get(f"/jobs/{queued['id']}").json()["started"] is None
    assert client.post("/jobs/99999/cancel", json={}).status_code == 404


def test_the_train_form_becomes_the_study_that_runs(monkeypatch, tmp_path):
    monkeypatch.setenv("SENTICOMPARE_EXPERIMENTS", str(tmp_path))
    form = {"name": "from_form", "models": ["smollm2-135m"], "datasets": ["sst2"], "preset": "tiny", "seeds": [3]}
    with TestClient(create_app(ServeSettings()), base_url=BASE_URL) as client:
        job = client.post("/train", json={"form": form, "report": False})
        assert job.status_code == 202 and job.json()["title"] == "train from_form: smollm2-135m × sst2 (tiny)"
        record = JobStore().get(job.json()["id"])
        assert yaml.safe_load((record.folder / "study.yaml").read_text()) == form
        assert record.argv[-3:] == ["run", str(record.folder / "study.yaml"), "--no-report"]
        assert client.post(f"/jobs/{record.id}/cancel", json={}).json()["state"] in ("cancelled", "running")
        assert wait_for(client, record.id, timeout_s=60)["state"] == "cancelled"


def test_a_restarted_server_lists_its_jobs_and_marks_the_interrupted_ones(monkeypatch, tmp_path):
    monkeypatch.setenv("SENTICOMPARE_EXPERIMENTS", str(tmp_path))
    store = JobStore()
    done = store.create("train", "train a", ["true"], "a")
    store.update(done.id, state="succeeded", finished="2026-01-01T00:00:00+00:00")
    orphan = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"], start_new_session=True)
    running = store.create("train", "train b", ["x"], "b")
    store.update(running.id, state="running", pid=orphan.pid, pid_started=psutil.Process(orphan.pid).create_time())
    queued = store.create("merge", "merge c", ["x"], "c")
    with TestClient(create_app(ServeSettings()), base_url=BASE_URL) as client:
        jobs = {job["id"]: job for job in client.get("/jobs").json()}
    assert [jobs[j.id]["state"] for j in (done, running, queued)] == ["succeeded", "interrupted", "interrupted"]
    assert jobs[running.id]["error"] == "the server stopped while it ran; submit it again"
    assert jobs[queued.id]["error"] == "the server stopped before it started; submit it again"
    assert orphan.wait(timeout=15) is not None  # the left-over process was ended


def test_the_log_shows_the_runners_stage_and_progress(tmp_path):
    log = tmp_path / "log.txt"
    bar = "tiny:  50%|#####     | 4/8 [00:30<00:30,  7.50s/stage, sst2/smollm2-135m 03_evaluate · predict 1/2]"
    log.write_text(f"starting\ntiny:   0%|          | 0/8 [00:00<?, ?stage/s]\r{bar}")
    view = read_log(log)
    assert (view.progress, view.stage) == (0.5, "sst2/smollm2-135m 03_evaluate · predict 1/2")
    assert view.tail == ["starting", bar]
    log.write_text("merge: loading 2 adapters\nmerge: evaluating on sst2\n")
    assert read_log(log).stage == "merge: evaluating on sst2" and read_log(log).progress is None


def test_reports_are_listed_and_served_sandboxed(monkeypatch, tmp_path):
    monkeypatch.setenv("SENTICOMPARE_REPORTS", str(tmp_path))
    monkeypatch.setenv("SENTICOMPARE_EXPERIMENTS", str(tmp_path / "experiments"))
    (tmp_path / "tiny.html").write_text("<html><body><h1>tiny</h1><script>alert(1)</script></body></html>")
    with TestClient(create_app(ServeSettings()), base_url=BASE_URL) as client:
        assert [r["study"] for r in client.get("/reports").json()] == ["tiny"]
        page = client.get("/reports/tiny")
        assert page.status_code == 200 and "<h1>tiny</h1>" in page.text
        assert "sandbox" in page.headers["content-security-policy"]
        assert "script-src" not in page.headers["content-security-policy"]  # default-src 'none': no script runs
        missing = client.get("/reports/other")
        assert missing.status_code == 404 and "senticompare report other" in missing.json()["detail"]


@pytest.mark.slow
@pytest.mark.full
def test_a_generative_adapter_merges_without_a_head(served, tmp_path):
    """A generator's adapter has no modules_to_save: only its LoRA is combined (cat of itself at
    0.5 + 0.5 is the adapter's own update)."""
    from safetensors.torch import load_file

    from helpers import config
    from helpers.adapters.merge import merge_weights
    from helpers.core.device import precision_for
    from helpers.core.io import read_json
    from helpers.train import models

    spec = config.get_model("smollm2-135m-json")
    adapter = paths.experiments_dir() / JSON / "adapter"
    out = merge_weights([adapter, adapter], [0.5, 0.5], "cat", None, models.load_causal_lm(spec, precision_for("cpu")),
                        tmp_path / "adapter")
    merged, own = load_file(out / "adapter_model.safetensors"), load_file(adapter / "adapter_model.safetensors")
    assert all(".lora_" in key for key in merged) and set(merged) == set(own)
    key = next(k.removesuffix(".lora_A.weight") for k in own if k.endswith(".lora_A.weight"))
    lora = read_json(adapter / "adapter_config.json")
    scaling = lora["lora_alpha"] / lora["r"]
    np.testing.assert_allclose((merged[f"{key}.lora_B.weight"] @ merged[f"{key}.lora_A.weight"]).numpy(),
                               (scaling * own[f"{key}.lora_B.weight"] @ own[f"{key}.lora_A.weight"]).numpy(),
                               rtol=1e-4, atol=1e-6)
    assert models.load_finetuned(spec, out, ["negative", "positive"], precision_for("cpu")) is not None
