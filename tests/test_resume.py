"""Resumable work knows what made it: a partial evaluation is resumed only by the run that
would make the same records (settings, model, prompt, dtype, code, each question's content);
anything else sets it aside as a numbered `.stale` file and starts over, so a killed run
whose settings then change still gives the clean run's metrics. Training output directories
are taken as done only for the same setup."""
import dataclasses
import json
import os
import shutil

import pytest

import nanovlm_lite
from nanovlm_lite.cli import main
from nanovlm_lite.data.aokvqa import load_questions, write_questions
from nanovlm_lite.evaluate import run
from nanovlm_lite.evaluate.merge import merge_point
from nanovlm_lite.evaluate.run import (StaleRecordsError, evaluate_questions, evaluate_shard,
                                       read_partial, record_fingerprint)
from nanovlm_lite.settings import PointSettings

from helpers import make_parquet


class Killed(Exception):
    pass


@pytest.fixture(scope="module")
def engine(fixture_dir):
    return nanovlm_lite.load(str(fixture_dir))


def kill_after(monkeypatch, scoring: str, batches: int):
    """The scorer dies (like a killed job) once `batches` batches have been recorded."""
    original, calls = run.SCORERS[scoring], []

    def scorer(*a, **k):
        if len(calls) == batches:
            raise Killed
        calls.append(1)
        return original(*a, **k)
    monkeypatch.setitem(run.SCORERS, scoring, scorer)


def metrics_of(out):
    m = json.loads((out / "metrics.json").read_text())
    return {k: m[k] for k in ("n_questions", "n_correct", "accuracy", "n_unparsed", "n_errors")}, m


def test_killed_run_then_other_settings_gives_the_clean_runs_metrics(fixture_dir, tmp_path,
                                                                     monkeypatch, capsys):
    """The issue's case: a generate run killed mid-way into --out, then the same --out
    evaluated with letter scoring: the generate records must not be merged in."""
    data = make_parquet(tmp_path / "q.parquet", n=6)
    clean = tmp_path / "clean"
    assert main(["evaluate", "--model", str(fixture_dir), "--data", data, "--out", str(clean),
                 "--batch-size", "2"]) == 0
    out = tmp_path / "out"
    kill_after(monkeypatch, "generate", 2)
    with pytest.raises(Killed):
        main(["evaluate", "--model", str(fixture_dir), "--data", data, "--out", str(out),
              "--batch-size", "2", "--scoring", "generate", "--set", "max_new_tokens=2"])
    fingerprint, records = read_partial(out / "records.jsonl.partial")
    assert fingerprint["settings"]["scoring"] == "generate" and len(records) == 4
    monkeypatch.undo()
    capsys.readouterr()
    assert main(["evaluate", "--model", str(fixture_dir), "--data", data, "--out", str(out),
                 "--batch-size", "2"]) == 0
    err = capsys.readouterr().err
    assert "its 4 records were made by other settings (max_new_tokens: 2 -> 10, scoring: " \
           "'generate' -> 'letter')" in err and "set aside as records.jsonl.partial.stale" in err
    assert metrics_of(out)[0] == metrics_of(clean)[0]
    assert all(r["scoring"] == "letter" for r in
               (json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()))
    stale_fp, stale_records = read_partial(out / "records.jsonl.partial.stale")
    assert stale_fp["settings"]["scoring"] == "generate" and len(stale_records) == 4
    assert metrics_of(out)[1]["fingerprint"]["settings"]["scoring"] == "letter"


def test_stale_files_are_numbered_never_overwritten(engine, tmp_path, capsys):
    questions = load_questions(make_parquet(tmp_path / "q.parquet", n=3))
    partial = tmp_path / "s.jsonl.partial"
    for scoring in ("letter", "cloze", "letter"):
        evaluate_questions(engine, questions[:1], PointSettings(scoring=scoring), partial_path=partial,
                           progress=False)
    assert sorted(p.name for p in tmp_path.glob("s.jsonl.partial*")) == [
        "s.jsonl.partial", "s.jsonl.partial.stale", "s.jsonl.partial.stale.1"]
    assert read_partial(tmp_path / "s.jsonl.partial.stale")[0]["settings"]["scoring"] == "letter"
    assert read_partial(tmp_path / "s.jsonl.partial.stale.1")[0]["settings"]["scoring"] == "cloze"


def test_another_model_prompt_or_code_restarts_the_shard(engine, fixture_dir, tmp_path,
                                                         monkeypatch, capsys):
    questions = load_questions(make_parquet(tmp_path / "q.parquet", n=2))
    settings = PointSettings()
    partial = tmp_path / "s.jsonl.partial"
    base = record_fingerprint(engine, settings)
    evaluate_questions(engine, questions, settings, partial_path=partial, progress=False)

    def redo(fingerprint):
        capsys.readouterr()
        evaluate_questions(engine, questions, settings, partial_path=partial, progress=False,
                           fingerprint=fingerprint)
        return capsys.readouterr().err

    # weights written again (a new mtime) are another model
    copy = tmp_path / "copy"
    shutil.copytree(fixture_dir, copy)
    os.utime(copy / "model.safetensors", ns=(1, 1))
    other = nanovlm_lite.load(str(copy))
    assert "another model" in redo(record_fingerprint(other, settings))
    assert "another prompt text" in redo({**base, "prompt": {"default": "changed {question}"}})
    monkeypatch.setattr(run, "record_code_sha256", lambda: "0" * 16)
    assert "other code" in redo(record_fingerprint(engine, settings))
    assert "other code" not in redo(record_fingerprint(engine, settings))  # same again: resumed
    assert len(list(tmp_path.glob("s.jsonl.partial.stale*"))) == 3


def test_changed_questions_are_redone_and_the_rest_resumed(engine, tmp_path, monkeypatch, capsys):
    path = make_parquet(tmp_path / "q.parquet", n=4)
    questions = load_questions(path)
    partial = tmp_path / "s.jsonl.partial"
    evaluate_questions(engine, questions, PointSettings(), partial_path=partial, progress=False)
    questions[2].choices = list(reversed(questions[2].choices))
    questions[2].correct_choice_idx = 3 - questions[2].correct_choice_idx
    write_questions(questions, path)
    scored = []
    original = run.SCORERS["letter"]
    monkeypatch.setitem(run.SCORERS, "letter", lambda e, p, c, s: scored.append(c) or original(e, p, c, s))
    capsys.readouterr()
    records = evaluate_questions(engine, load_questions(path), PointSettings(), partial_path=partial,
                                 progress=False)
    assert scored == [[questions[2].choices]]
    assert records[2]["choices"] == questions[2].choices
    assert "1 records are of questions whose content" in capsys.readouterr().err
    assert [r["question_id"] for r in read_partial(partial.with_name(partial.name + ".stale"))[1]] == ["q2"]


def test_a_wider_selection_reuses_what_was_done(engine, tmp_path, monkeypatch):
    questions = load_questions(make_parquet(tmp_path / "q.parquet", n=5))
    partial = tmp_path / "s.jsonl.partial"
    evaluate_questions(engine, questions[:2], PointSettings(), partial_path=partial, progress=False)
    scored = []
    original = run.SCORERS["letter"]
    monkeypatch.setitem(run.SCORERS, "letter", lambda e, p, c, s: scored.append(len(p)) or original(e, p, c, s))
    evaluate_questions(engine, questions, PointSettings(), partial_path=partial, progress=False)
    assert sum(scored) == 3 and not list(tmp_path.glob("*.stale*"))


def test_pipeline_shard_resumes_only_its_own_partial(fixture_dir, tmp_path, monkeypatch, capsys):
    """evaluate_shard (the Snakemake job) goes through the same check, and merge refuses
    shards that other settings made."""
    data = make_parquet(tmp_path / "q.parquet", n=6)
    out = tmp_path / "points" / "p" / "shards" / "0.jsonl"
    kill_after(monkeypatch, "generate", 1)
    with pytest.raises(Killed):
        evaluate_shard(fixture_dir, data, {"scoring": "generate", "max_new_tokens": 2}, 0, 2, out,
                       batch_size=2, device="cpu")
    monkeypatch.undo()
    evaluate_shard(fixture_dir, data, {}, 0, 2, out, batch_size=2, device="cpu")
    evaluate_shard(fixture_dir, data, {}, 1, 2, out.with_name("1.jsonl"), batch_size=2, device="cpu")
    assert "set aside as 0.jsonl.partial.stale" in capsys.readouterr().err
    fingerprint, records = read_partial(out)
    assert fingerprint["settings"]["scoring"] == "letter"
    assert [r["question_id"] for r in records] == ["q0", "q2", "q4"]
    shards = [out, out.with_name("1.jsonl")]
    metrics = merge_point(shards, data, {}, tmp_path / "merged", "p")
    assert metrics["n_questions"] == 6 and metrics["fingerprint"] == fingerprint
    with pytest.raises(StaleRecordsError, match="was made by other settings"):
        merge_point(shards, data, {"global_only": True}, tmp_path / "merged", "p")
    evaluate_shard(fixture_dir, data, {}, 1, 2, out.with_name("1.jsonl"), batch_size=2,
                   device="cpu", prompt_template="short")
    with pytest.raises(StaleRecordsError):
        merge_point(shards, data, {}, tmp_path / "merged", "p")


# ---- training output directories ---------------------------------------------------------
@pytest.fixture(scope="module")
def demo_data(tmp_path_factory):
    from nanovlm_lite.data.easyvqa import build_demo_dataset
    out = tmp_path_factory.mktemp("easyvqa")
    build_demo_dataset(out, max_train=32, max_val=8)
    return out


def test_a_finished_training_dir_is_done_only_for_the_same_setup(demo_data, tmp_path, capsys,
                                                                  monkeypatch):
    from nanovlm_lite.train.recipes import TrainingOutputError
    out = tmp_path / "m"
    argv = ["train", "--recipe", "demo-smoke", "--data", str(demo_data), "--out", str(out),
            "--steps", "2", "--threads", "2", "--no-progress"]
    assert main(argv) == 0
    weights = (out / "model.safetensors").stat().st_mtime_ns
    capsys.readouterr()
    assert main([*argv, "--resume"]) == 0
    assert "already trained by this setup" in capsys.readouterr().out
    assert (out / "model.safetensors").stat().st_mtime_ns == weights
    # another recipe (or step count) into the same directory is never taken as done
    rc = main(["train", "--recipe", "demo-smoke", "--data", str(demo_data), "--out", str(out),
               "--steps", "3", "--resume", "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and "already holds a model trained by another setup" in err
    assert "differs in config" in err and "Traceback" not in err
    assert (out / "model.safetensors").stat().st_mtime_ns == weights
    from nanovlm_lite.train.recipes import train_demo_model
    with pytest.raises(TrainingOutputError, match="differs in settings"):
        train_demo_model(demo_data, out, recipe="demo-smoke", overrides={"steps": 2},
                         settings={"global_only": True}, progress=False)
    # a from-scratch recipe whose initialisation changed is another setup too
    from nanovlm_lite.train import recipes
    monkeypatch.setitem(recipes.RECIPES, "demo-smoke",
                        dataclasses.replace(recipes.RECIPES["demo-smoke"], lm_init_std=0.05))
    with pytest.raises(TrainingOutputError, match="differs in from_scratch"):
        train_demo_model(demo_data, out, recipe="demo-smoke", overrides={"steps": 2}, progress=False)
    monkeypatch.undo()
    # without --resume the documented behaviour holds: training starts over
    assert main(argv) == 0
    assert (out / "model.safetensors").stat().st_mtime_ns != weights


def test_training_on_a_split_without_answers_is_refused(demo_data, tmp_path, capsys):
    questions = load_questions(demo_data / "train.parquet")
    for q in questions[:2]:
        q.correct_choice_idx = None
    write_questions(questions, tmp_path / "train.parquet")
    rc = main(["train", "--recipe", "demo-smoke", "--data", str(tmp_path / "train.parquet"),
               "--out", str(tmp_path / "m"), "--steps", "1", "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and "2 of 32 questions have no answer" in err and "Traceback" not in err
