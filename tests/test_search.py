"""The budgeted search (nanovlm_lite/search/): the racing rule, the `search:` section's
errors, the held-out split, the trial cache, a killed search resumed, two workers on one
storage. The fixture model answers near chance, so thresholds here sit near 0.25."""
import json
import multiprocessing
from pathlib import Path

import optuna
import pandas as pd
import pyarrow.parquet as pq
import pytest

import nanovlm_lite
from nanovlm_lite.data.aokvqa import load_questions, write_questions
from nanovlm_lite.evaluate import run as evaluate_run
from nanovlm_lite.evaluate.stats import wilson_interval
from nanovlm_lite.search.racing import (CLEARED, DROPPED, PROMOTED, SHORT, WilsonPruner,
                                        rung_decision)
from nanovlm_lite.search.result import pareto_names, write_result
from nanovlm_lite.search.space import (SearchConfigError, candidates, parse_search, point_name,
                                       read_found)
from nanovlm_lite.search.split import split_for_search
from nanovlm_lite.search.worker import Worker, plan_search

from helpers import make_parquet, png_bytes

SPACE = {"space": {"tile_size": [32, 64], "vit_blocks": [1, None], "global_only": [True, False]},
         "rungs": [8, 16, "all"], "budget": 400}


# ---- the racing rule -------------------------------------------------------------------
def test_a_candidate_whose_upper_bound_is_under_the_bar_is_dropped():
    # 3 of 20: Wilson upper 0.36 < 0.5 -> dropped, at any rung
    assert wilson_interval(3, 20)[1] < 0.5
    assert rung_decision(3, 20, 0.5, last=False) == DROPPED
    assert rung_decision(3, 20, 0.5, last=True) == DROPPED
    # 8 of 20: upper 0.61 >= 0.5 -> kept (promoted), and short of the bar at the end
    assert wilson_interval(8, 20)[1] >= 0.5 > wilson_interval(8, 20)[0]
    assert rung_decision(8, 20, 0.5, last=False) == PROMOTED
    assert rung_decision(8, 20, 0.5, last=True) == SHORT
    # 17 of 20: lower 0.64 >= 0.5 -> cleared at the last rung, promoted before it
    assert rung_decision(17, 20, 0.5, last=True) == CLEARED
    assert rung_decision(17, 20, 0.5, last=False) == PROMOTED


@pytest.mark.parametrize("correct,prune", [(3, True), (8, False), (17, False)])
def test_the_pruner_drops_by_the_same_rule(correct, prune):
    study = optuna.create_study(pruner=WilsonPruner(0.5))
    trial = study.ask()
    trial.report(correct / 20, 20)
    assert trial.should_prune() is prune


def test_pareto_keeps_only_what_nothing_beats():
    rows = [("a", 1.0, 0.5), ("b", 2.0, 0.7), ("c", 2.0, 0.6), ("d", 3.0, 0.7), ("e", 0.5, 0.4)]
    assert pareto_names(rows) == {"a", "b", "e"}


# ---- the search: section ---------------------------------------------------------------
@pytest.mark.parametrize("section,message", [
    ({"space": {"tile_size": [32]}, "budjet": 3}, "unknown key(s) ['budjet']"),
    ({"space": {"tile_sise": [32]}}, "space/tile_sise: unknown setting"),
    ({"space": {"finetune": ["demo"]}}, "space/finetune: not searchable"),
    ({"space": {"tile_size": [32]}, "base": {"prune_lm_mlp": 0.5}}, "base/prune_lm_mlp: not searchable"),
    ({"space": {"tile_size": ["big"]}}, "space/tile_size: value 'big'"),
    ({"space": {"tile_size": [32]}, "base": {"tile_size": 64}}, "base/tile_size: also in space"),
    ({"space": {"tile_size": [32]}, "rungs": [450, 150]}, "rungs: must grow"),
    ({"space": {"tile_size": [32]}, "rungs": ["all", 150]}, "rungs: must grow"),
    ({"space": {"tile_size": [32]}, "budget": 0}, "budget: an integer >= 1"),
    ({"space": {"keep_ratio": {"low": 0.5, "high": 1.0}}}, "missing ['step']"),
    ({"space": {}}, "space: a non-empty mapping"),
    ({"space": {"tile_size": [16, 32, 48], "vit_blocks": [1, 2]}, "max_candidates": 5},
     "spans 6 candidates, more than max_candidates 5"),
])
def test_search_config_errors_name_the_key(section, message):
    with pytest.raises(SearchConfigError) as e:
        parse_search(section)
    assert message in str(e.value)
    assert str(e.value).startswith(("config search/", "config search: "))


def test_ranges_and_candidates():
    config = parse_search({"space": {"keep_ratio": {"low": 0.25, "high": 1.0, "step": 0.25},
                                     "select": ["norm", None]}, "base": {"scoring": "cloze"}})
    assert config.space["keep_ratio"] == [0.25, 0.5, 0.75, 1.0]
    valid, invalid = candidates(config)
    # keep_ratio < 1 without select is not a valid point; select: None and keep 1 is the base
    assert len(valid) == 5 and len(invalid) == 3
    assert all("keep_ratio < 1 needs select" in why for _, why in invalid)
    assert {"scoring": "cloze"} in valid
    assert point_name({"global_only": True, "tile_size": 32, "skip_lm_blocks": [1, 2]}) == \
        "found.global_only-true.skip_lm_blocks-1_2.tile_size-32"
    assert config.rung_sizes(300) == [150, 300]   # 450 and "all" are both the whole split


# ---- the held-out split ----------------------------------------------------------------
def _shared_image_parquet(path, n_images=12, per_image=3):
    rows = []
    for i in range(n_images):
        image = {"bytes": png_bytes(32, 32, seed=i), "path": None}
        for k in range(per_image):
            rows.append({"question_id": f"q{i}-{k}", "question": f"question {k}?",
                         "choices": ["a", "b", "c", "d"], "correct_choice_idx": k % 4,
                         "direct_answers": ["a"] * 10, "difficult_direct_answer": False,
                         "rationales": [], "image": image})
    write_questions(rows, path)
    return path


def test_the_search_split_is_held_out_by_whole_images(tmp_path):
    train = _shared_image_parquet(tmp_path / "train.parquet")
    counts = split_for_search(train, tmp_path / "fit.parquet", tmp_path / "search.parquet", 7, 0)
    fit, search = (load_questions(tmp_path / f) for f in ("fit.parquet", "search.parquet"))
    assert counts == {"search_questions": 9, "fit_questions": 27, "search_images": 3}
    fit_ids, search_ids = {q.question_id for q in fit}, {q.question_id for q in search}
    assert not fit_ids & search_ids and len(fit_ids | search_ids) == 36
    assert not {q.image_bytes for q in fit} & {q.image_bytes for q in search}
    # the same seed holds out the same questions (byte for byte); another seed others
    split_for_search(train, tmp_path / "fit2.parquet", tmp_path / "search2.parquet", 7, 0)
    assert (tmp_path / "search2.parquet").read_bytes() == (tmp_path / "search.parquet").read_bytes()
    split_for_search(train, tmp_path / "fit3.parquet", tmp_path / "search3.parquet", 7, 1)
    assert {q.question_id for q in load_questions(tmp_path / "search3.parquet")} != search_ids
    assert pq.read_schema(tmp_path / "fit.parquet") == pq.read_schema(train)


# ---- workers ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def engine(fixture_dir):
    return nanovlm_lite.load(str(fixture_dir))


@pytest.fixture(scope="module")
def questions(tmp_path_factory):
    path = make_parquet(tmp_path_factory.mktemp("search") / "search.parquet", n=32)
    return load_questions(path)


def _search(engine, questions, root: Path, threshold=0.3, **changes):
    config = parse_search({**SPACE, **changes})
    plan = plan_search(engine, questions, config, threshold, root / "journal.log")
    (root / "plan.json").write_text(json.dumps(plan))
    return plan, config


def _result(root):
    content = write_result(root / "plan.json", root / "trials.csv", root / "found.yaml")
    return content, pd.read_csv(root / "trials.csv")


class _Counting:
    """Counts the questions the scorer is asked about; raises after `fail_after` batches."""

    def __init__(self, monkeypatch, fail_after=None):
        self.questions, self.batches, self.fail_after = 0, 0, fail_after
        real = evaluate_run.SCORERS["letter"]

        def scorer(engine, prompts, choices, settings):
            if self.fail_after is not None and self.batches >= self.fail_after:
                raise KeyboardInterrupt("killed")
            self.batches += 1
            self.questions += len(prompts)
            return real(engine, prompts, choices, settings)
        monkeypatch.setitem(evaluate_run.SCORERS, "letter", scorer)


def test_candidates_race_cheapest_first_and_the_table_follows_the_rule(engine, questions, tmp_path):
    plan, config = _search(engine, questions, tmp_path)
    estimates = [c["gflops_estimate"] for c in plan["candidates"]]
    assert estimates == sorted(estimates) and len(estimates) == 8
    done = Worker(engine, questions, plan, tmp_path / "trials", config.budget).run()
    content, table = _result(tmp_path)
    assert done["question_evaluations"] == content["question_evaluations"] <= config.budget
    for _, row in table.iterrows():  # every rung's decision is the Wilson rule's
        low, high = wilson_interval(row["correct"], row["n_questions"])
        if high < 0.3:
            assert row["rung_decision"] == DROPPED and row["decision"] == DROPPED
    last = table.groupby("trial").tail(1)
    cleared = last[last["decision"] == CLEARED]
    if len(cleared):  # the found point is the cheapest that cleared, and nothing cheaper cleared
        found = read_found(tmp_path / "found.yaml")
        assert list(found) == [cleared.sort_values("gflops").iloc[0]["name"]]
        assert (last[last["gflops_estimate"] < cleared["gflops_estimate"].min()]["decision"]
                != CLEARED).all()
    # the questions evaluated are the budget's count: each trial's largest rung
    assert last["n_questions"].sum() == content["question_evaluations"]


def test_a_rerun_reuses_every_evaluated_trial(engine, questions, tmp_path, monkeypatch):
    plan, config = _search(engine, questions, tmp_path, threshold=0.2)
    first = _Counting(monkeypatch)
    Worker(engine, questions, plan, tmp_path / "trials", config.budget).run()
    assert first.questions > 0
    content, table = _result(tmp_path)
    # a new plan (a fresh journal, as after a config edit) over the same trial cache
    plan, config = _search(engine, questions, tmp_path, threshold=0.2)
    again = _Counting(monkeypatch)
    Worker(engine, questions, plan, tmp_path / "trials", config.budget).run()
    assert again.questions == 0
    assert _result(tmp_path)[0] == content


def test_a_killed_search_resumes_to_the_same_result(engine, questions, tmp_path, monkeypatch):
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    plan, config = _search(engine, questions, whole)
    Worker(engine, questions, plan, whole / "trials", config.budget).run()
    expected, expected_table = _result(whole)

    plan, config = _search(engine, questions, killed)
    _Counting(monkeypatch, fail_after=3)  # dies in the middle of a candidate
    with pytest.raises(KeyboardInterrupt):
        Worker(engine, questions, plan, killed / "trials", config.budget).run()
    study = optuna.load_study(study_name=plan["study_name"],
                              storage=optuna.storages.JournalStorage(
                                  optuna.storages.journal.JournalFileBackend(plan["journal"])))
    assert any(t.state == optuna.trial.TrialState.RUNNING for t in study.trials)
    monkeypatch.undo()
    resumed = _Counting(monkeypatch)
    Worker(engine, questions, plan, killed / "trials", config.budget).run()
    got, got_table = _result(killed)
    assert got == expected
    columns = ["name", "n_questions", "correct", "rung_decision", "decision"]
    assert (got_table[columns].sort_values(["name", "n_questions"]).reset_index(drop=True)
            .equals(expected_table[columns].sort_values(["name", "n_questions"])
                    .reset_index(drop=True)))
    # the records finished before the kill were not asked again
    assert resumed.questions < expected["question_evaluations"]


def _worker_process(fixture_dir, data, plan_path, trials_dir, budget):
    engine = nanovlm_lite.load(str(fixture_dir))
    plan = json.loads(Path(plan_path).read_text())
    Worker(engine, load_questions(data), plan, trials_dir, budget).run()


def test_two_workers_on_one_storage_give_a_valid_result(engine, fixture_dir, tmp_path):
    data = make_parquet(tmp_path / "search.parquet", n=32)
    qs = load_questions(data)
    plan, config = _search(engine, qs, tmp_path, threshold=0.2)
    context = multiprocessing.get_context("spawn")
    procs = [context.Process(target=_worker_process,
                             args=(fixture_dir, data, tmp_path / "plan.json", tmp_path / "trials",
                                   config.budget)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    content, table = _result(tmp_path)
    # no candidate was raced twice, and every evaluated one reached a decision
    last = table.groupby("trial").tail(1)
    assert last["name"].is_unique
    assert set(last["decision"]) <= {CLEARED, SHORT, DROPPED}
    # what one worker finds: the cheapest candidate that clears
    single = tmp_path / "single"
    plan1, _ = _search(engine, qs, single, threshold=0.2)
    Worker(engine, qs, plan1, single / "trials", config.budget).run()
    assert _result(single)[0]["points"] == content["points"]
