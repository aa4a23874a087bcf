"""End to end in a browser: `senticompare serve`'s app under uvicorn, driven in headless Debian
chromium through Playwright (`executable_path`: Playwright's own browser download is not used).
It starts a tiny training (a pasted study YAML) from the Train view, follows it in the Jobs view until it has finished,
and predicts a text with the new adapter in the Predict view, the text's markup shown as text."""
from __future__ import annotations

import os
import re
import shutil
import socket
import threading
import time

import pytest
import uvicorn
import yaml

from helpers.serve.app import ServeSettings, create_app

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ADAPTER = "ui_tiny/sst2/smollm2-135m"
STUDY = {"name": "ui_tiny", "models": ["smollm2-135m"], "datasets": ["sst2"], "preset": "tiny", "seeds": [1],
         "overrides": {"max_train": 32, "max_validation": 16, "max_calibration": 16, "max_test": 16,
                       "train": {"max_steps": 2}, "evaluation": {"baseline_shots": []},
                       "speed": {"warmup": 1, "repeats": 1, "max_examples": 4, "batch_size": 4}}}
TEXT = "<b>not bold</b> A moving, wonderful film."
ENDED = re.compile(r"^(succeeded|failed|cancelled|interrupted)$")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.full,  # minutes of a real training through the UI: `make test-full`
    pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (`make setup` installs it with "
                                                "apt-get); this test drives it through Playwright's executable_path"),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(mirror):
    """The service on a free loopback port, in a thread of this process."""
    port = _free_port()
    app = create_app(ServeSettings(port=port))
    instance = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=instance.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not instance.started and time.monotonic() < deadline:
        time.sleep(0.1)
    assert instance.started, "uvicorn did not start"
    yield f"http://127.0.0.1:{port}"
    instance.should_exit = True
    thread.join(timeout=60)


def test_train_from_the_ui_then_predict_with_the_new_adapter(server):
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                             args=["--no-sandbox"] if os.geteuid() == 0 else [])
        page = browser.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(f"{server}/#train")
        expect(page.locator("#train-models input[value='smollm2-135m']")).to_be_visible()  # the form's choices
        page.click("#view-train summary")  # the study YAML: the tiny preset cut to a few steps
        page.fill("#train-yaml textarea", yaml.safe_dump(STUDY))
        page.uncheck("#train-yaml input[name=report]")  # the HTML/PDF report: minutes more, not under test here
        page.click("#train-yaml button[type=submit]")
        page.wait_for_url(re.compile(r"#jobs/\d+$"))
        state = page.locator("#job-state")  # locators, not page-side eval: the page's CSP forbids eval
        expect(state).to_have_text("running", timeout=60_000)
        expect(page.locator("#job-stage")).to_contain_text("sst2/smollm2-135m", timeout=120_000)
        expect(state).to_have_text(ENDED, timeout=900_000)  # about a minute on 2 idle cores
        assert state.text_content() == "succeeded", page.text_content("#job-log")

        page.click(f"#job-adapters a[href='#predict/{ADAPTER.replace('/', '%2F')}']")
        checkbox = page.locator(f"#predict-adapters input[value='{ADAPTER}']")
        expect(checkbox).to_be_checked()
        page.fill("#predict-text", TEXT)
        page.click("#predict-run")
        card = page.locator(f".card[data-adapter='{ADAPTER}']")
        expect(card).to_be_visible(timeout=120_000)
        assert card.locator(".label").text_content() in ("negative", "positive")
        probabilities = [float(p) for p in card.locator(".prob").all_text_contents()]
        assert len(probabilities) == 2 and sum(probabilities) == pytest.approx(1, abs=2e-3)
        expect(page.locator(".predicted-text")).to_have_text(f"Text: {TEXT}")  # the markup shown as text
        assert page.locator("#predict-results b").count() == 0
        assert not errors, errors
        browser.close()
