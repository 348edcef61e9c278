"""A point's shards -> the official predictions file, all records, and metrics with the
exact settings, prompt and code version that made them."""
from __future__ import annotations

import json
import os
from collections import defaultdict
from pathlib import Path

from ..environment import environment
from ..provenance import code_version
from ..settings import PointSettings
from .direct_answer import direct_answer_accuracy
from .prompts import mcq_prompt_name, template_text
from .records import StaleRecordsError, fingerprint_difference, read_environment, read_partial
from .stats import LEVEL, N_BOOTSTRAP, SEED, bootstrap_interval, wilson_interval


def _write_json(path: Path, data) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2))
    os.replace(tmp, path)


def point_environment(shard_paths) -> dict:
    """The evaluate jobs' environment (torch's view included) for metrics.json; every
    distinct one under `shards_differ` when shards ran in different environments (SLURM
    nodes of two kinds); this process's own, without torch's view, if no shard has one."""
    found = [e for e in (read_environment(p) for p in shard_paths) if e is not None]
    if not found:
        return environment()
    distinct = [e for i, e in enumerate(found) if e not in found[:i]]
    return dict(found[0], shards_differ=distinct) if len(distinct) > 1 else found[0]


def official_predictions(records: list[dict]) -> dict:
    """{question_id: {"multiple_choice": choice text, "direct_answer": text}} (allenai/aokvqa)."""
    preds = {}
    for r in records:
        idx = r.get("predicted_idx")
        preds[r["question_id"]] = {
            "multiple_choice": r["choices"][idx] if idx is not None else "",
            "direct_answer": r.get("direct_answer", ""),
        }
    return preds


def compute_metrics(records: list[dict], questions_by_id: dict | None = None) -> dict:
    n = len(records)
    # a record's `correct` is None where the split has no answer (A-OKVQA test): accuracy
    # is then absent (None), not 0.0
    answered = [r for r in records if r.get("correct") is not None]
    correct = sum(bool(r["correct"]) for r in answered)
    metrics = {
        "n_questions": n,
        "n_correct": correct if answered else None,
        "accuracy": correct / len(answered) if answered else None,
        "n_unparsed": sum(r.get("parsed") is False for r in records),
        "n_errors": sum("error" in r for r in records),
        "errors": {r["question_id"]: r["error"] for r in records if "error" in r},
    }
    if answered and len(answered) < n:
        metrics["n_with_answer"] = len(answered)
    by_type = defaultdict(list)
    for r in answered:
        if "question_type" in r:
            by_type[r["question_type"]].append(bool(r.get("correct")))
    if by_type:
        metrics["accuracy_by_type"] = {t: sum(v) / len(v) for t, v in sorted(by_type.items())}
        metrics["n_by_type"] = {t: len(v) for t, v in sorted(by_type.items())}
        add_type_intervals(metrics, by_type)
    if questions_by_id is not None and any("direct_answer" in r for r in records):
        scores = [direct_answer_accuracy(r.get("direct_answer", ""),
                                         questions_by_id[r["question_id"]].direct_answers)
                  for r in records
                  if not questions_by_id[r["question_id"]].difficult_direct_answer
                  and questions_by_id[r["question_id"]].direct_answers]
        metrics["direct_answer_accuracy"] = sum(scores) / len(scores) if scores else None
        metrics["n_direct_answer"] = len(scores)
        add_direct_answer_interval(metrics, scores)
    add_accuracy_interval(metrics)
    flops = [r["flops"]["total"] for r in records if "flops" in r]
    if flops:
        metrics["tflops_per_question"] = sum(flops) / len(flops) / 1e12
    return metrics


# ---- 95% intervals (evaluate/stats.py); None wherever the accuracy itself is None -------

def add_accuracy_interval(metrics: dict) -> None:
    """accuracy_low/high: the Wilson interval of n_correct out of the questions with an
    answer (n_with_answer where only some have one, else n_questions)."""
    n = metrics.get("n_with_answer", metrics["n_questions"])
    known = metrics.get("accuracy") is not None and n > 0
    low, high = wilson_interval(metrics["n_correct"], n) if known else (None, None)
    metrics["accuracy_low"], metrics["accuracy_high"] = low, high
    metrics["interval"] = {"level": LEVEL, "accuracy": "wilson",
                           "direct_answer_accuracy": "bootstrap over questions",
                           "n_bootstrap": N_BOOTSTRAP, "seed": SEED}


def add_type_intervals(metrics: dict, by_type: dict) -> None:
    """accuracy_by_type_low/high: {question type: bound}, Wilson per type."""
    acc = metrics.get("accuracy_by_type") or {}
    bounds = {t: (wilson_interval(sum(v), len(v)) if acc.get(t) is not None else (None, None))
              for t, v in sorted(by_type.items())}
    metrics["accuracy_by_type_low"] = {t: lo for t, (lo, _) in bounds.items()}
    metrics["accuracy_by_type_high"] = {t: hi for t, (_, hi) in bounds.items()}


def add_direct_answer_interval(metrics: dict, scores: list) -> None:
    """direct_answer_accuracy_low/high: bootstrap of the mean min(1, m/3) score."""
    known = metrics.get("direct_answer_accuracy") is not None
    low, high = bootstrap_interval(scores) if known and scores else (None, None)
    metrics["direct_answer_accuracy_low"], metrics["direct_answer_accuracy_high"] = low, high


def merge_point(shard_paths: list, data_path, settings: dict, out_dir, point: str,
                max_samples: int | None = None, model: str | None = None,
                prompt_template: str | None = None) -> dict:
    from ..data.aokvqa import load_questions
    settings = dict(settings or {})
    if prompt_template and "prompt" not in settings:
        settings["prompt"] = prompt_template
    point_settings = PointSettings.from_dict(settings, where=f"point {point!r}")
    questions = load_questions(data_path, max_samples)
    by_id = {}
    first = None
    for path in shard_paths:
        fingerprint, shard_records = read_partial(path)
        if fingerprint is not None:  # every shard made by the same inputs, at these settings
            if fingerprint.get("settings") != point_settings.to_dict():
                raise StaleRecordsError(
                    f"point {point!r}: {path} was made by "
                    f"{fingerprint_difference(fingerprint, {**fingerprint, 'settings': point_settings.to_dict()})}"
                    f"; rerun its evaluation (delete it, or snakemake -R evaluate)")
            if first is None:
                first = (path, fingerprint)
            elif fingerprint_difference(first[1], fingerprint):
                raise StaleRecordsError(
                    f"point {point!r}: {path} and {first[0]} were made by different inputs "
                    f"({fingerprint_difference(first[1], fingerprint)}); rerun the point's "
                    f"evaluation (delete its shards, or snakemake -R evaluate)")
        for r in shard_records:
            by_id[r["question_id"]] = r
    missing = [q.question_id for q in questions if q.question_id not in by_id]
    if missing:
        raise ValueError(f"point {point!r}: the shards lack {len(missing)} of {len(questions)} "
                         f"questions (first: {missing[:5]})")
    records = [by_id[q.question_id] for q in questions]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    _write_json(out_dir / "predictions.json", official_predictions(records))
    tmp = out_dir / "records.jsonl.tmp"
    tmp.write_text("".join(json.dumps(r) + "\n" for r in records))
    os.replace(tmp, out_dir / "records.jsonl")
    template = mcq_prompt_name(point_settings)
    metrics = {"point": point, **compute_metrics(records, {q.question_id: q for q in questions}),
               "settings": point_settings.to_dict(), "prompt_template": template,
               "prompt_text": template_text(template), "model": model, "data": str(data_path),
               "max_samples": max_samples, "code": code_version(),
               "environment": point_environment(shard_paths),
               "fingerprint": first[1] if first else None}
    _write_json(out_dir / "metrics.json", metrics)
    return metrics
