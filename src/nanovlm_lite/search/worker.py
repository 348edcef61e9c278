"""The search itself: plan the candidates (cheapest first), then race them on the search
split, from one worker or several sharing one Optuna storage.

Why cheapest first and not a model-based sampler: a setting's FLOPs are known before it
runs, and the objective is the cheapest setting over the bar. Racing the candidates in
FLOPs order finds exactly that setting (on the search split) and can stop as soon as one
clears: everything left costs more. A sampler such as TPE optimises one score and would
spend evaluations on settings that cost more than one already found. Optuna keeps the
queue (candidates enqueued in FLOPs order), the trials' state and their per-rung values
(a journal file that several processes share), and drops candidates through its pruner
interface (racing.WilsonPruner).

Each candidate's records are cached by its settings (`trials/<key>.jsonl.partial`, the
evaluation's own resumable format): a rerun, a resumed search or another search with the
same settings and questions reuses every question already answered. A candidate is worked
on only by the process holding its lock file; a trial left running by a killed worker is
taken over by the next worker that gets its lock.
"""
from __future__ import annotations

import fcntl
import json
import os
import random
import time
from pathlib import Path

import optuna

from ..settings import PointSettings
from .racing import CLEARED, DROPPED, WilsonPruner, rung_decision
from .space import SearchConfig, candidates, point_name, settings_key

optuna.logging.set_verbosity(optuna.logging.WARNING)
ESTIMATE_QUESTIONS = 8       # questions whose analytic FLOPs order the candidates
OUT_OF_BUDGET = "out of budget"


# ------------------------------------------------------------------ storage and order
def storage(journal) -> optuna.storages.JournalStorage:
    from optuna.storages.journal import JournalFileBackend
    return optuna.storages.JournalStorage(JournalFileBackend(str(journal)))


def search_order(questions: list, seed: int) -> list:
    """The search split's questions in the seeded order the rungs take them from: rung r
    is the first n_r, the same for every candidate."""
    ordered = sorted(questions, key=lambda q: q.question_id)
    random.Random(f"search-rungs:{seed}").shuffle(ordered)
    return ordered


def point_for(settings: dict, prompt_template: str | None) -> PointSettings:
    """A candidate's settings as the evaluate rule runs them (the study's prompt unless the
    candidate names one)."""
    settings = dict(settings)
    if prompt_template and "prompt" not in settings:
        settings["prompt"] = prompt_template
    return PointSettings.from_dict(settings)


def estimate_gflops(engine, point: PointSettings, questions: list) -> float:
    """Mean analytic GFLOPs of `questions` at `point`, from their prompts alone (no model
    run): what orders the candidates."""
    from ..data.aokvqa import DatasetError
    from ..evaluate.prompts import mcq_prompt_name, render
    from ..flops import DEFAULT_CHOICE_TOKENS, price
    from ..plan import plan_for_prompt
    template = mcq_prompt_name(point)
    total, counted = 0, 0
    for q in questions:
        choices = q.choices if point.scoring != "cloze" else None
        try:
            image = q.image()
        except DatasetError:  # an unreadable image: its record will say so; not priced
            continue
        prompt = engine.prepare(image, render(template, q.question, choices), point)
        decode = point.max_new_tokens if point.scoring == "generate" else 0
        choice_tokens = DEFAULT_CHOICE_TOKENS if point.scoring == "cloze" else ()
        total += price(engine.cfg, plan_for_prompt(engine.cfg, point, prompt, decode,
                                                   choice_tokens))["total"]
        counted += 1
    return total / max(counted, 1) / 1e9


def plan_search(engine, questions: list, config: SearchConfig, threshold: float,
                journal, prompt_template: str | None = None) -> dict:
    """Every candidate checked against the model and priced, then enqueued cheapest first
    in a fresh storage (`journal`). Returns the plan (written beside it as plan.json)."""
    valid, invalid = candidates(config)
    ordered = search_order(questions, config.seed)
    sample = ordered[:ESTIMATE_QUESTIONS]
    planned = []
    for settings in valid:
        point = point_for(settings, prompt_template)
        problems = point.problems_against(engine.cfg)
        if problems:
            invalid.append((settings, "; ".join(problems)))
            continue
        planned.append({"name": point_name(settings), "key": settings_key(settings),
                        "settings": settings,
                        "gflops_estimate": estimate_gflops(engine, point, sample)})
    planned.sort(key=lambda c: (c["gflops_estimate"], c["name"]))
    journal = Path(journal)
    journal.parent.mkdir(parents=True, exist_ok=True)
    for stale in (journal, journal.with_name(journal.name + ".lock")):
        if stale.exists():
            stale.unlink()
    study_name = f"search-{config.fingerprint()}"
    study = optuna.create_study(study_name=study_name, storage=storage(journal),
                                direction="minimize")
    for c in planned:
        study.enqueue_trial({}, user_attrs={"name": c["name"], "key": c["key"],
                                            "settings": json.dumps(c["settings"], sort_keys=True),
                                            "gflops_estimate": c["gflops_estimate"]})
    return {"study_name": study_name, "journal": str(journal), "threshold": threshold,
            "config": {"fingerprint": config.fingerprint(), "budget": config.budget,
                       "rungs": list(config.rungs), "seed": config.seed},
            "rungs": config.rung_sizes(len(questions)), "n_questions": len(questions),
            "candidates": planned,
            "invalid": [{"settings": s, "why": why} for s, why in invalid]}


# ------------------------------------------------------------------ the budget
def reserved(trials) -> int:
    """Question-evaluations the search has committed to: each trial's largest rung begun.
    Counted by rung, not by what a cache saved, so a resumed search spends as a fresh one."""
    return sum(int(t.user_attrs.get("questions", 0)) for t in trials)


def stop_reason(trials, budget: int, first_rung: int) -> str | None:
    """Why a worker takes no more candidates, or None: the queue is empty, a candidate has
    cleared the bar and the queue holds only dearer ones, or the budget is spent."""
    waiting = [t for t in trials if t.state == optuna.trial.TrialState.WAITING]
    if not waiting:
        return "every candidate taken"
    cheapest_waiting = min(t.user_attrs["gflops_estimate"] for t in waiting)
    cleared = [t.user_attrs["gflops_estimate"] for t in trials
               if t.user_attrs.get("decision") == CLEARED]
    if cleared and min(cleared) <= cheapest_waiting:
        return "a candidate cleared the bar; the rest cost more"
    if reserved(trials) + first_rung > budget:
        return "budget spent"
    return None


# ------------------------------------------------------------------ one worker
class _Lock:
    """An exclusive, non-blocking lock on a file; the OS frees it when its process dies."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            self.held = True
        except BlockingIOError:
            os.close(self.fd)
            self.held = False

    def release(self):
        if self.held:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.held = False


class Worker:
    def __init__(self, engine, questions: list, plan: dict, trials_dir, budget: int,
                 prompt_template: str | None = None, batch_size: int = 32,
                 progress: bool = False):
        self.engine, self.plan = engine, plan
        self.questions = search_order(questions, plan["config"]["seed"])
        self.rungs, self.threshold, self.budget = plan["rungs"], plan["threshold"], budget
        self.trials_dir = Path(trials_dir)
        self.prompt_template, self.batch_size, self.progress = prompt_template, batch_size, progress
        self.study = optuna.load_study(study_name=plan["study_name"],
                                       storage=storage(plan["journal"]),
                                       pruner=WilsonPruner(self.threshold))

    def _state(self, trial_id):
        return self.study._storage.get_trial(trial_id).state

    def run(self) -> dict:
        """Take candidates until there is nothing worth taking; returns what was done."""
        worked, start = [], time.time()
        while True:
            trials = self.study.get_trials(deepcopy=False)
            running = [t for t in trials if t.state == optuna.trial.TrialState.RUNNING]
            adopted = False
            for t in running:  # a trial whose worker died: its lock is free
                lock = _Lock(self.trials_dir / f"{t.user_attrs['key']}.lock")
                if lock.held and self._state(t._trial_id) == optuna.trial.TrialState.RUNNING:
                    self._work(optuna.trial.Trial(self.study, t._trial_id), lock)
                    worked.append(t.user_attrs["name"])
                    adopted = True
                    break
                lock.release()
            if adopted:
                continue
            reason = stop_reason(trials, self.budget, self.rungs[0])
            if reason:
                break
            trial = self.study.ask()
            if "key" not in trial.user_attrs:  # another worker took the last one
                self.study.tell(trial, state=optuna.trial.TrialState.FAIL)
                continue
            lock = _Lock(self.trials_dir / f"{trial.user_attrs['key']}.lock")
            if lock.held:  # else a worker adopting it beat us to the lock: it finishes it
                self._work(trial, lock)
                worked.append(trial.user_attrs["name"])
        return {"worked": worked, "stopped": reason, "seconds": round(time.time() - start, 1),
                "question_evaluations": reserved(self.study.get_trials(deepcopy=False))}

    def _records(self, point, n: int, partial: Path, fingerprint: dict) -> list[dict]:
        from ..evaluate.run import evaluate_questions
        return evaluate_questions(self.engine, self.questions[:n], point, self.batch_size,
                                  partial, progress=self.progress, fingerprint=fingerprint)

    def _work(self, trial, lock: _Lock) -> None:
        """Race one candidate through the rungs (its lock held), then release the lock."""
        from ..evaluate.run import record_fingerprint
        try:
            attrs = trial.study._storage.get_trial(trial._trial_id).user_attrs
            point = point_for(json.loads(attrs["settings"]), self.prompt_template)
            partial = self.trials_dir / f"{attrs['key']}.jsonl.partial"
            # hashes the model's weights: once a candidate, not once a rung
            fingerprint = record_fingerprint(self.engine, point)
            last = len(self.rungs) - 1
            for i, n in enumerate(self.rungs):
                begun = int(attrs.get("questions", 0))
                if n > begun:
                    others = reserved(self.study.get_trials(deepcopy=False)) - begun
                    if others + n > self.budget:
                        trial.set_user_attr("decision", OUT_OF_BUDGET)
                        self.study.tell(trial, state=optuna.trial.TrialState.FAIL)
                        return
                    trial.set_user_attr("questions", n)
                    attrs = {**attrs, "questions": n}
                records = self._records(point, n, partial, fingerprint)
                correct = sum(bool(r.get("correct")) for r in records)
                gflops = sum(r.get("flops", {}).get("total", 0) for r in records) / n / 1e9
                decision = rung_decision(correct, n, self.threshold, last=i == last)
                trial.report(correct / n, n)
                trial.set_user_attr(f"rung_{i}", {"n": n, "correct": correct,
                                                  "decision": decision, "gflops": gflops})
                if trial.should_prune():
                    trial.set_user_attr("decision", DROPPED)
                    self.study.tell(trial, state=optuna.trial.TrialState.PRUNED)
                    return
            trial.set_user_attr("decision", decision)
            trial.set_user_attr("gflops", gflops)
            self.study.tell(trial, gflops)
        finally:
            lock.release()
