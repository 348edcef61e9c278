"""Scorers on a tiny A-OKVQA-schema parquet with the fixture model."""
import json

import numpy as np
import pytest
import torch

import nanovlm_lite
from nanovlm_lite.cli import main
from nanovlm_lite.data.aokvqa import load_questions
from nanovlm_lite.evaluate.direct_answer import direct_answer_accuracy, normalise_answer
from nanovlm_lite.evaluate.mcq import choice_log_likelihoods, choice_token_ids, parse_answer
from nanovlm_lite.evaluate.prompts import letter_token_ids, render
from nanovlm_lite.evaluate.run import evaluate_questions, read_records
from nanovlm_lite.settings import PointSettings

from helpers import make_parquet


@pytest.fixture(scope="module")
def engine(fixture_dir):
    return nanovlm_lite.load(str(fixture_dir))


@pytest.fixture()
def questions(tmp_path):
    return load_questions(make_parquet(tmp_path / "q.parquet", n=5))


def test_letter_prediction_is_argmax_over_the_choices_letters(engine, questions):
    settings = PointSettings(scoring="letter")
    records = evaluate_questions(engine, questions, settings, batch_size=3, progress=False)
    letters = letter_token_ids(engine.tokenizer, 4)
    decided_by_letters = 0
    for q, rec in zip(questions, records):
        prompt = engine.prepare(q.image(), render("default", q.question, q.choices), settings)
        logits = engine.next_token_logits([prompt], settings)[0]
        assert rec["predicted_idx"] == int(logits[letters].argmax())
        assert rec["sequence_length"] == prompt.sequence_length
        assert rec["n_tiles"] == prompt.n_tiles and rec["decode_tokens"] == 0
        # the model's overall favourite token is not a letter: only the letters decide
        decided_by_letters += int(logits.argmax()) not in letters
        assert rec["correct"] == (rec["predicted_idx"] == q.correct_choice_idx)
    assert decided_by_letters > 0


def test_blank_images_keep_the_tiling_and_drop_the_content(engine, questions):
    """The blind baseline's input: the same tiles (so the same FLOPs) with nothing in them,
    so a question's answer no longer depends on its image."""
    blank = PointSettings(blank_images=True)
    text = render("default", questions[0].question, questions[0].choices)
    image = questions[0].image()
    seen, unseen = engine.prepare(image, text), engine.prepare(image, text, blank)
    assert unseen.input_ids == seen.input_ids and unseen.n_tiles == seen.n_tiles
    assert seen.image.tiles.abs().sum() > 0 and unseen.image.tiles.abs().sum() == 0
    other = engine.prepare(image.transpose(0), text, blank)  # mirrored: different pixels
    assert torch.equal(engine.next_token_logits([unseen], blank),
                       engine.next_token_logits([other], blank))
    assert not torch.equal(engine.next_token_logits([seen]),
                           engine.next_token_logits([engine.prepare(image.transpose(0), text)]))


def test_unparseable_generation_is_wrong_and_counted(engine, questions, tmp_path):
    settings = PointSettings(scoring="generate", max_new_tokens=3)
    records = evaluate_questions(engine, questions, settings, batch_size=2, progress=False)
    unparsed = [r for r in records if not r["parsed"]]
    assert unparsed, "the random fixture model should babble"
    for r in unparsed:
        assert r["predicted_idx"] is None and r["correct"] is False
    from nanovlm_lite.evaluate.merge import compute_metrics
    metrics = compute_metrics(records)
    assert metrics["n_unparsed"] == len(unparsed)
    assert metrics["n_correct"] == sum(r["correct"] for r in records)


def test_parse_answer():
    choices = ["a frisbee", "a kite", "an umbrella", "a surfboard"]
    assert parse_answer("B", choices) == 1
    assert parse_answer(" (C) an umbrella", choices) == 2
    assert parse_answer("The answer is D.", choices) == 3
    assert parse_answer("a kite", choices) == 1
    assert parse_answer("I think it is an umbrella", choices) == 2
    assert parse_answer("Eat", choices) is None            # not "E", not a choice
    assert parse_answer("Apples", choices) is None          # starts with A but is no letter
    assert parse_answer("", choices) is None
    assert parse_answer("a kite or a frisbee", choices) is None   # two choices named


def test_cloze_shared_prefix_equals_separate_full_passes(engine, questions):
    settings = PointSettings(scoring="cloze")
    prompts = [engine.prepare(q.image(), q.question, settings) for q in questions[:3]]
    choices = [q.choices for q in questions[:3]]
    shared = choice_log_likelihoods(engine, prompts, choices, settings)
    for p, cs, scores in zip(prompts, choices, shared):
        for choice, (total, n) in zip(cs, scores):
            ids = choice_token_ids(engine.tokenizer, choice)
            assert n == len(ids)
            full = nanovlm_lite.engine.Prompt(p.input_ids + ids, p.image, p.tokens_per_tile)
            hidden, _, _ = engine.prefill([full], settings)
            logp = torch.log_softmax(engine.head(hidden[0]), -1)
            start = p.sequence_length - 1
            expected = sum(float(logp[start + k, t]) for k, t in enumerate(ids))
            assert abs(total - expected) < 1e-4


def test_corrupt_image_is_reported_per_question(engine, tmp_path):
    qs = load_questions(make_parquet(tmp_path / "c.parquet", n=4, corrupt={1}))
    records = evaluate_questions(engine, qs, PointSettings(), batch_size=4, progress=False)
    assert "q1" in records[1]["error"] and records[1]["correct"] is False
    assert all("error" not in r for i, r in enumerate(records) if i != 1)


def test_interrupted_evaluation_resumes(engine, questions, tmp_path, monkeypatch):
    partial = tmp_path / "shard.jsonl.partial"
    settings = PointSettings()
    first = evaluate_questions(engine, questions[:2], settings, partial_path=partial, progress=False)
    with open(partial, "a") as f:
        f.write('{"question_id": "torn')     # a write cut short by the interruption
    scored = []
    from nanovlm_lite.evaluate import run
    original = run.SCORERS["letter"]
    monkeypatch.setitem(run.SCORERS, "letter",
                        lambda e, p, c, s: scored.append(len(p)) or original(e, p, c, s))
    records = evaluate_questions(engine, questions, settings, partial_path=partial, progress=False)
    assert sum(scored) == len(questions) - 2
    assert records[:2] == first
    # the torn line is gone and every record, old and new, reads back
    assert sorted(r["question_id"] for r in read_records(partial)) == ["q0", "q1", "q2", "q3", "q4"]


def test_direct_answer_normalisation_and_accuracy():
    assert normalise_answer("Two dogs!") == "2 dogs"
    assert normalise_answer("The Frisbee.") == "frisbee"
    assert normalise_answer("dont") == "don't"
    assert direct_answer_accuracy("frisbee", ["frisbee"] * 2 + ["ball"] * 8) == pytest.approx(2 / 3)
    assert direct_answer_accuracy("A frisbee", ["frisbee"] * 5 + ["ball"] * 5) == 1.0
    assert direct_answer_accuracy("kite", ["frisbee"] * 10) == 0.0


def test_evaluate_command_writes_official_predictions(fixture_dir, tmp_path, capsys):
    data = make_parquet(tmp_path / "q.parquet", n=4)
    out = tmp_path / "out"
    assert main(["evaluate", "--model", str(fixture_dir), "--data", data, "--mode", "da",
                 "--out", str(out), "--batch-size", "2", "--set", "max_new_tokens=3"]) == 0
    preds = json.loads((out / "predictions.json").read_text())
    metrics = json.loads((out / "metrics.json").read_text())
    records = [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]
    assert set(preds) == {"q0", "q1", "q2", "q3"}
    for r in records:
        p = preds[r["question_id"]]
        assert p["multiple_choice"] == r["choices"][r["predicted_idx"]]
        assert p["direct_answer"] == r["direct_answer"]
        assert r["flops"]["total"] > 0
    assert metrics["n_questions"] == 4 and metrics["n_direct_answer"] == 3  # q0 is difficult
    assert metrics["settings"]["direct_answer"] is True
    assert metrics["prompt_text"] == "{question}\n{options}\nAnswer with the letter."
    assert metrics["code"]["source_sha256"]
    assert json.loads(capsys.readouterr().out)["n_questions"] == 4
    assert not (out / "records.jsonl.partial").exists()


def test_cli_logits_and_generate(fixture_dir, fixture_cases, tmp_path, capsys):
    case = fixture_cases[0]
    out = tmp_path / "logits.npy"
    assert main(["logits", "--model", str(fixture_dir), "--image", str(fixture_dir / case["image"]),
                 "--text", case["text"], "--out", str(out)]) == 0
    assert np.abs(np.load(out) - np.load(fixture_dir / case["logits"])).max() < 1e-4
    capsys.readouterr()
    assert main(["generate", "--model", str(fixture_dir), "--image", str(fixture_dir / case["image"]),
                 "--text", case["text"], "--max-new-tokens", "6", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["token_ids"] == case["greedy_tokens"][: len(result["token_ids"])]


def test_cli_bad_image_is_a_clear_error(fixture_dir, tmp_path, capsys):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG not really")
    assert main(["logits", "--model", str(fixture_dir), "--image", str(bad), "--text", "hi",
                 "--out", str(tmp_path / "x.npy")]) == 2
    assert "broken.png" in capsys.readouterr().err


def test_a_split_without_answers_gives_predictions_and_no_accuracy(fixture_dir, tmp_path, capsys):
    """A-OKVQA test has no answers: the official-format predictions are what a leaderboard
    needs, and accuracy is absent (null), not 0.0."""
    from nanovlm_lite.data.aokvqa import write_questions
    questions = load_questions(make_parquet(tmp_path / "q.parquet", n=3))
    for q in questions:
        q.correct_choice_idx, q.direct_answers = None, []
    data = write_questions(questions, tmp_path / "test.parquet")
    out = tmp_path / "out"
    assert main(["evaluate", "--model", str(fixture_dir), "--data", str(data), "--mode", "da",
                 "--out", str(out), "--set", "max_new_tokens=2"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["accuracy"] is None and summary["direct_answer_accuracy"] is None
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n_correct"] is None and metrics["n_questions"] == 3
    preds = json.loads((out / "predictions.json").read_text())
    records = [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]
    assert all(r["correct"] is None for r in records)
    for r in records:
        assert preds[r["question_id"]] == {"multiple_choice": r["choices"][r["predicted_idx"]],
                                           "direct_answer": r["direct_answer"]}
