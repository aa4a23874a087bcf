"""End to end in a browser: `senticompare serve`'s app under uvicorn, driven in headless Debian
chromium through Playwright (`executable_path`: Playwright's own browser download is not used).
It starts a tiny training (a pasted study YAML) from the Train view, follows it in the Jobs view until it has finished,
and predicts a text with the new adapter in the Predict view, the text's markup shown as text."""
from __future__ import annotations

import re

import pytest
import yaml

ADAPTER = "ui_tiny/sst2/minilm-l6"
STUDY = {"name": "ui_tiny", "models": ["minilm-l6"], "datasets": ["sst2"], "preset": "tiny", "seeds": [1],
         "overrides": {"max_train": 32, "max_validation": 16, "max_calibration": 16, "max_test": 16,
                       "train": {"max_steps": 2}, "evaluation": {"baseline_shots": []},
                       "speed": {"warmup": 1, "repeats": 1, "max_examples": 4, "batch_size": 4}}}
TEXT = "<b>not bold</b> A moving, wonderful film."
ENDED = re.compile(r"^(succeeded|failed|cancelled|interrupted)$")

# A real training through the UI: 98-104 s in the suite. In `make test-full`: CI's browser test is
# the label-type answers on tests/test_study_labels.py's runs (docs/decisions.md, the CI budget).
pytestmark = [pytest.mark.slow, pytest.mark.full]


def test_train_from_the_ui_then_predict_with_the_new_adapter(mirror, live_server, browser_page):
    from playwright.sync_api import expect

    page, errors = browser_page
    page.goto(f"{live_server}/#train")
    expect(page.locator("#train-models input[value='minilm-l6']")).to_be_visible()  # the form's choices
    page.click("#view-train summary")  # the study YAML: the tiny preset cut to a few steps
    page.fill("#train-yaml textarea", yaml.safe_dump(STUDY))
    page.uncheck("#train-yaml input[name=report]")  # the HTML/PDF report: minutes more, not under test here
    page.click("#train-yaml button[type=submit]")
    page.wait_for_url(re.compile(r"#jobs/\d+$"))
    state = page.locator("#job-state")  # locators, not page-side eval: the page's CSP forbids eval
    expect(state).to_have_text("running", timeout=60_000)
    expect(page.locator("#job-stage")).to_contain_text("sst2/minilm-l6", timeout=120_000)
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
