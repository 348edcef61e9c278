"""What a search found: the trials table (one row per candidate and rung) and found.yaml
(the cheapest candidate that cleared the bar, named by its settings, plus the Pareto set
of the candidates it evaluated to the end). No torch: the checkpoint job only reads.
"""
from __future__ import annotations

import json
from pathlib import Path

import optuna
import pandas as pd
import yaml

from ..evaluate.stats import wilson_interval
from .racing import CLEARED
from .worker import reserved, storage

TRIAL_COLUMNS = ("trial", "name", "gflops_estimate", "rung", "n_questions", "correct",
                 "accuracy", "accuracy_low", "accuracy_high", "gflops", "rung_decision",
                 "decision", "pareto", "found", "settings")


def load_trials(plan: dict) -> list:
    study = optuna.load_study(study_name=plan["study_name"], storage=storage(plan["journal"]))
    return [t for t in study.get_trials(deepcopy=False) if "key" in t.user_attrs]


def _rungs(trial) -> list[dict]:
    return [trial.user_attrs[k] for k in sorted((k for k in trial.user_attrs
                                                 if k.startswith("rung_")),
                                                key=lambda k: int(k.split("_")[1]))]


def pareto_names(finished: list[tuple[str, float, float]]) -> set[str]:
    """Names of the (name, gflops, accuracy) rows no other row beats on both (cheaper or
    as cheap, and more accurate or as accurate, one of them strictly)."""
    out = set()
    for name, g, a in finished:
        if not any((g2 <= g and a2 >= a) and (g2 < g or a2 > a) for _, g2, a2 in finished):
            out.add(name)
    return out


def summarise(plan: dict, trials: list) -> tuple[pd.DataFrame, dict]:
    """(trials table, found.yaml's content) from the plan and the stored trials."""
    last_rung = plan["rungs"][-1]
    finished = [(t.user_attrs["name"], t.user_attrs["gflops"], _rungs(t)[-1]["correct"] / last_rung)
                for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    pareto = pareto_names(finished)
    cleared = sorted(((t.user_attrs["gflops"], t.user_attrs["name"], t) for t in trials
                      if t.user_attrs.get("decision") == CLEARED), key=lambda x: x[:2])
    found = cleared[0][2] if cleared else None
    rows = []
    for t in trials:
        decision = t.user_attrs.get("decision") or t.state.name.lower()
        for i, r in enumerate(_rungs(t)):
            low, high = wilson_interval(r["correct"], r["n"])
            rows.append({"trial": t.number, "name": t.user_attrs["name"],
                         "gflops_estimate": t.user_attrs["gflops_estimate"], "rung": i,
                         "n_questions": r["n"], "correct": r["correct"],
                         "accuracy": r["correct"] / r["n"], "accuracy_low": low,
                         "accuracy_high": high, "gflops": r["gflops"],
                         "rung_decision": r["decision"], "decision": decision,
                         "pareto": t.user_attrs["name"] in pareto,
                         "found": found is not None and t.number == found.number,
                         "settings": t.user_attrs["settings"]})
    table = pd.DataFrame(rows, columns=list(TRIAL_COLUMNS))
    waiting = sum(t.state == optuna.trial.TrialState.WAITING for t in trials)
    content = {
        "threshold": plan["threshold"],
        "budget": plan["config"]["budget"],
        "question_evaluations": reserved(trials),
        "search_questions": plan["n_questions"],
        "rungs": plan["rungs"],
        "candidates": len(plan["candidates"]),
        "invalid_candidates": len(plan["invalid"]),
        "evaluated": len({t.number for t in trials if _rungs(t)}),
        "not_evaluated": waiting,
        "points": ({found.user_attrs["name"]: json.loads(found.user_attrs["settings"])}
                   if found else {}),
        "found_gflops_on_search_split": found.user_attrs["gflops"] if found else None,
        "pareto": sorted(pareto),
    }
    return table, content


def write_result(plan_path, trials_csv, found_yaml) -> dict:
    plan = json.loads(Path(plan_path).read_text())
    table, content = summarise(plan, load_trials(plan))
    Path(trials_csv).parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(trials_csv, index=False)
    header = ("# The search's result (nanovlm_lite/search). `points` is the cheapest candidate whose\n"
              "# accuracy on the search split cleared the bar by its 95% lower bound; the study\n"
              "# evaluates it like a hand-listed point. trials.csv has every trial and rung.\n")
    Path(found_yaml).write_text(header + yaml.safe_dump(content, sort_keys=False))
    return content
