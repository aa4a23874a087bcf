"""One test per security rule of the service (helpers/serve/security.py, docs/serve.md "Security"):
binding, the token, request sizes, JSON-only posts, other origins and hosts, ids and paths from
requests, escaping in the page. No model is loaded: every refusal comes before one would be."""
from __future__ import annotations

import re

import pytest
import yaml
from fastapi.testclient import TestClient

from helpers.cli import main
from helpers.config import ConfigError
from helpers.serve import security
from helpers.serve.app import ServeSettings, create_app
from helpers.serve.security import TOKEN_ENV, policy_for
from helpers.serve.ui import STATIC

BASE_URL = "http://127.0.0.1:8000"
TOKEN = "a-long-enough-secret-token"
STUDY = {"name": "s", "models": ["smollm2-135m"], "datasets": ["sst2"], "preset": "tiny", "seeds": [1]}


@pytest.fixture
def experiments(monkeypatch, tmp_path):
    monkeypatch.setenv("SENTICOMPARE_EXPERIMENTS", str(tmp_path))
    return tmp_path


@pytest.fixture
def client(experiments):
    with TestClient(create_app(ServeSettings()), base_url=BASE_URL) as client:
        yield client


@pytest.fixture
def guarded(experiments):
    with TestClient(create_app(ServeSettings(token=TOKEN, max_body_bytes=4096)), base_url=BASE_URL) as client:
        yield client


def test_binding_beyond_this_machine_needs_a_long_token(experiments, monkeypatch, capsys):
    assert policy_for("127.0.0.1", 8000, None).token is None and policy_for("::1", 8000, None).token is None
    with pytest.raises(ConfigError, match=f"--host 0.0.0.0 serves other machines: set {TOKEN_ENV}"):
        policy_for("0.0.0.0", 8000, None)
    with pytest.raises(ConfigError, match="holds 5 characters; give at least 16"):
        policy_for("0.0.0.0", 8000, "short")
    assert policy_for("0.0.0.0", 8000, TOKEN).token == TOKEN
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    assert main(["serve", "--host", "192.168.1.20"]) == 2  # refused before anything listens
    assert f"set {TOKEN_ENV}" in capsys.readouterr().err
    assert ServeSettings().host == "127.0.0.1"


def test_with_a_token_every_api_call_needs_it_compared_in_constant_time(guarded, monkeypatch):
    compared = []
    real = security.hmac.compare_digest
    monkeypatch.setattr(security.hmac, "compare_digest", lambda a, b: compared.append((a, b)) or real(a, b))
    assert guarded.get("/adapters").status_code == 401
    assert guarded.get("/adapters", headers={"Authorization": "Bearer wrong-token-of-some-length"}).status_code == 401
    assert guarded.get("/adapters", headers={"Authorization": f"Basic {TOKEN}"}).status_code == 401
    assert guarded.post("/train", json={"form": STUDY}).status_code == 401
    assert guarded.get("/adapters", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
    assert (b"wrong-token-of-some-length", TOKEN.encode()) in compared
    for public in ("/", "/static/app.js", "/healthz", "/docs", "/openapi.json"):  # no data in them
        assert guarded.get(public).status_code == 200, public
    options = guarded.get("/options", headers={"Authorization": f"Bearer {TOKEN}"}).json()
    assert options["auth"] is True


def test_bodies_over_the_limit_are_refused_counted_as_they_arrive(guarded):
    auth = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    declared = guarded.post("/predict", content=b"[" + b" " * 5000 + b"]", headers=auth)
    assert declared.status_code == 413 and "exceeds 4096 bytes" in declared.json()["detail"]

    def chunks():  # no Content-Length: the body is counted while it is read
        for _ in range(10):
            yield b" " * 1000

    streamed = guarded.post("/predict", content=chunks(), headers=auth)
    assert streamed.status_code == 413
    texts = guarded.post("/predict", json={"adapters": ["a/b/c"], "texts": ["x"] * 65}, headers=auth)
    assert texts.status_code == 422 and "at most 64 items" in texts.text


def test_posts_must_be_json_and_come_from_this_servers_own_pages(client):
    form = client.post("/train", data={"study_yaml": "name: s"})
    assert form.status_code == 415 and "Content-Type: application/json" in form.json()["detail"]
    other_site = client.post("/train", json={"form": STUDY}, headers={"Origin": "https://evil.example"})
    assert other_site.status_code == 403 and "another site" in other_site.json()["detail"]
    own = client.post("/jobs/1/cancel", json={}, headers={"Origin": BASE_URL})
    assert own.status_code == 404  # past the guard: there is no job 1


def test_other_host_names_are_refused_on_loopback(client):
    rebound = client.get("/adapters", headers={"Host": "attacker.example:8000"})
    assert rebound.status_code == 403 and "open http://127.0.0.1:8000/" in rebound.json()["detail"]
    assert client.get("/adapters", headers={"Host": "localhost:8000"}).status_code == 200


@pytest.mark.parametrize("adapter", ["../secrets", "/etc/passwd", "a/../../b", "a\\b", "a//b", ".hidden/x",
                                     "a/b/c/d/e"])
def test_adapter_ids_are_checked_before_use(client, adapter):
    response = client.post("/predict", json={"adapters": [adapter], "texts": ["fine"]})
    assert response.status_code == 422 and "no '..', no absolute path" in response.text


def test_names_and_paths_in_requests_are_checked(client):
    merge = client.post("/merge", json={"adapters": [{"id": "a/b/c", "weight": 1}, {"id": "a/b/d", "weight": 1}],
                                        "out_id": "../x"})
    assert merge.status_code == 422 and "out_id" in merge.text
    form = client.post("/train", json={"form": {**STUDY, "name": "../../tmp/x"}})
    assert form.status_code == 422
    for key, value in (("data_dir", "/etc"), ("data_dir", "../elsewhere"), ("data_dir", "~/data"),
                       ("benchmarks", ["reports/../../x"])):
        study = client.post("/train", json={"study_yaml": yaml.safe_dump({**STUDY, key: value})})
        assert study.status_code == 422 and f"study {key}" in study.json()["detail"], (key, value)
    assert client.get("/reports/.hidden").status_code == 422
    assert client.get("/reports/a%20b").status_code == 422
    assert client.get("/jobs/1;rm").status_code == 422  # a job id is a number
    bad_yaml = client.post("/train", json={"study_yaml": "name: [unclosed"})
    assert bad_yaml.status_code == 422 and "study_yaml is not YAML" in bad_yaml.json()["detail"]
    unknown = client.post("/train", json={"study_yaml": yaml.safe_dump({**STUDY, "models": ["nope"]})})
    assert unknown.status_code == 422 and unknown.json()["detail"].startswith("study_yaml: unknown model id 'nope'")


def test_user_texts_reach_the_page_only_as_text(client):
    script = (STATIC / "app.js").read_text()
    assert not re.search(r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|eval\(|new Function", script)
    page = client.get("/")
    policy = page.headers["content-security-policy"]
    assert "script-src 'self';" in policy and "unsafe-inline" not in policy.split("script-src")[1].split(";")[0]
    assert "<script src=\"/static/app.js\"" in page.text and "<script>" not in page.text
    assert page.headers["x-content-type-options"] == "nosniff" and page.headers["x-frame-options"] == "DENY"
    assert 'sandbox=""' in page.text  # reports open in a frame where no script runs
