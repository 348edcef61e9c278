"""Parity: our engine against upstream nanoVLM's own code on the same checkpoint.

Upstream runs in a subprocess (its own imports, torchvision included); both sides see the
same dataset images and prompts; the report lists every difference and the run fails
past the tolerance, so a port bug stops the study before any point is evaluated.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np


class ParityError(RuntimeError):
    """Our engine and upstream's code disagree beyond the tolerance."""


def _cases_from_dataset(data_path, n_samples: int, workdir: Path) -> list[dict]:
    from .data.aokvqa import load_questions
    from .evaluate.prompts import render
    cases = []
    for q in load_questions(data_path, n_samples):
        image_path = workdir / f"{q.question_id}.png"
        q.image().save(image_path)
        cases.append({"question_id": q.question_id, "image": str(image_path),
                      "text": render("default", q.question, q.choices)})
    return cases


def run_upstream(upstream_dir, model_dir, cases: list[dict], out_npz: Path,
                 max_new_tokens: int = 4, python: str | None = None) -> dict:
    """Upstream's numbers for `cases`, computed by `python` (parity.python; None = ours)."""
    from .upstream_env import missing_message, parse_import_error
    python = python or sys.executable
    if os.sep in python and not os.path.isabs(python):  # the subprocess runs in model_dir
        python = os.path.abspath(python)
    cases_path = out_npz.with_suffix(".cases.json")
    cases_path.write_text(json.dumps(cases))
    runner = Path(__file__).with_name("upstream_runner.py")
    # cwd = the checkpoint: upstream resolves a relative `lm_tokenizer` against it
    proc = subprocess.run([python, str(runner), str(Path(upstream_dir).resolve()),
                           str(Path(model_dir).resolve()), str(cases_path.resolve()),
                           str(out_npz.resolve()), str(max_new_tokens)],
                          capture_output=True, text=True, cwd=model_dir)
    missing = parse_import_error(proc.stderr) if proc.returncode != 0 else None
    if missing:
        raise ParityError(missing_message(python, *missing))
    if proc.returncode != 0:
        raise ParityError(f"upstream nanoVLM's code failed in {upstream_dir} (run by {python}):"
                          f"\n{proc.stderr[-3000:]}")
    return dict(np.load(out_npz))


def run_parity(upstream_dir, model_dir, data_path, out_json, n_samples: int = 4,
               tolerance: float = 1e-3, device: str = "cpu", max_new_tokens: int = 4,
               python: str | None = None) -> dict:
    """Compares input ids, grids, tiles, last-position logits and greedy tokens; writes the
    report to `out_json`, then raises ParityError if anything is off. `python` runs
    upstream's code (parity.python; None = this interpreter)."""
    from . import load
    engine = load(str(model_dir), device=device, dtype="float32")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        cases = _cases_from_dataset(data_path, n_samples, tmp)
        upstream = run_upstream(upstream_dir, model_dir, cases, tmp / "upstream.npz", max_new_tokens,
                                python)
        report = {"model": str(model_dir), "upstream": str(upstream_dir), "tolerance": tolerance,
                  "device": device, "python": python or sys.executable, "cases": []}
        from PIL import Image
        for k, case in enumerate(cases):
            prompt = engine.prepare(Image.open(case["image"]), case["text"])
            logits = engine.next_token_logits([prompt])[0].cpu().numpy()
            tokens = engine.generate([prompt], max_new_tokens=max_new_tokens, stop_at_eos=False)[0]
            ours_tiles = prompt.image.tiles.numpy()
            theirs_tiles = upstream[f"case{k}_tiles"]
            row = {
                "question_id": case["question_id"],
                "same_input_ids": prompt.input_ids == upstream[f"case{k}_input_ids"].tolist(),
                "same_grid": list(prompt.image.grid) == upstream[f"case{k}_grid"].tolist(),
                "tiles_max_abs_diff": (float(np.abs(ours_tiles - theirs_tiles).max())
                                       if ours_tiles.shape == theirs_tiles.shape else None),
                "logits_max_abs_diff": float(np.abs(logits - upstream[f"case{k}_logits"]).max()),
                "same_greedy_tokens": tokens == upstream[f"case{k}_tokens"].tolist(),
            }
            row["ok"] = (row["same_input_ids"] and row["same_grid"]
                         and row["tiles_max_abs_diff"] is not None
                         and row["tiles_max_abs_diff"] <= tolerance
                         and row["logits_max_abs_diff"] <= tolerance and row["same_greedy_tokens"])
            report["cases"].append(row)
    report["ok"] = all(c["ok"] for c in report["cases"])
    Path(out_json).parent.mkdir(parents=True, exist_ok=True)
    Path(out_json).write_text(json.dumps(report, indent=2))
    if not report["ok"]:
        bad = [c for c in report["cases"] if not c["ok"]]
        raise ParityError(f"our engine differs from upstream nanoVLM on {len(bad)} of "
                          f"{len(report['cases'])} samples (tolerance {tolerance}); see {out_json}: {bad}")
    return report


def parity_command(args) -> int:
    report = run_parity(args.upstream, args.model, args.data, args.out, args.samples, args.tolerance)
    worst = max(c["logits_max_abs_diff"] for c in report["cases"])
    print(f"parity ok on {len(report['cases'])} samples; max logit difference {worst:.2e}")
    return 0
