"""Train and measure the offline demo model: the numbers issue 4's done-when asks for.

    python benchmarks/demo_training.py --data data/easyvqa --out results/demo-training \
        [--threads 2] [--max-val N] [--skip-blind] [--skip-finetunes]

1. The demo model (recipe `demo`) from scratch on easy-VQA train, timed.
2. The blind baseline (recipe `demo-blind`: the same recipe on blank images).
3. Held-out easy-VQA val accuracy per question type (colour / shape / yes-no) with the
   pipeline's own evaluator (evaluate/), at the full setting (cloze and letter scoring)
   and at cheaper settings (fewer image tokens, smaller tiles, a shallower ViT).
4. `demo-learned-pool` (only the learned pooling module trains) against plain average
   pooling at the same token count, and `demo-finetune` at a cheap setting.
Writes OUT/report.json and OUT/report.md; rerun it to resume an interrupted run. Timings
are only meaningful on a quiet machine (benchmarks/when_quiet.py) and an uninterrupted one.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

CHEAP = {  # name -> settings; the full setting is one 64 px tile = 16 image tokens
    "pool-avg2 (4 tokens)": {"pool": "avg", "pool_factor": 2},
    "tile-32 (2x2+global of 32 px, 4 tokens each)": {"tile_size": 32},
    "tile-32 global-only (4 tokens)": {"tile_size": 32, "global_only": True},
    "vit-1 (1 of 3 ViT blocks)": {"vit_blocks": 1},
    "select-norm-0.5 (8 tokens)": {"select": "norm", "keep_ratio": 0.5},
}


def evaluate(model_dir, questions, settings: dict, threads: int, blank: bool = False) -> dict:
    """Accuracy by question type with the pipeline's evaluator (or, on blank images, the
    trainer's validator, which can blank them)."""
    import nanovlm_lite
    from nanovlm_lite.settings import PointSettings
    from nanovlm_lite.train.validate import accuracy_by_type, score
    torch.set_num_threads(threads)
    engine = nanovlm_lite.load(str(model_dir))
    point = PointSettings.from_dict(settings)
    t0 = time.time()
    if blank:
        records = score(engine.model, engine, questions, point, point.scoring, blank_images=True)
    else:
        from nanovlm_lite.evaluate.run import evaluate_questions
        records = evaluate_questions(engine, questions, point, batch_size=64, progress=False,
                                     flops=False)
    out = accuracy_by_type(records)
    out["seconds"] = round(time.time() - t0, 1)
    return out


def row(name: str, acc: dict) -> str:
    cells = [f"{acc.get(k, float('nan')):.3f}" for k in ("overall", "color", "shape", "yes/no")]
    return f"| {name} | " + " | ".join(cells) + " |"


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="data/easyvqa")
    p.add_argument("--out", default="results/demo-training")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--max-val", type=int, default=None, help="score only the first N val questions")
    p.add_argument("--skip-blind", action="store_true")
    p.add_argument("--skip-finetunes", action="store_true")
    p.add_argument("--recipe", default="demo")
    args = p.parse_args()

    from nanovlm_lite.data.aokvqa import load_questions
    from nanovlm_lite.data.easyvqa import build_demo_dataset
    from nanovlm_lite.train.recipes import finetune, train_demo_model
    data, out = Path(args.data), Path(args.out)
    if not (data / "train.parquet").exists():
        build_demo_dataset(data)
    out.mkdir(parents=True, exist_ok=True)
    val = load_questions(data / "val.parquet", args.max_val)
    report_path = out / "report.json"
    # an interrupted run picks up where it stopped: trainings resume, done evaluations stay
    report: dict = json.loads(report_path.read_text()) if report_path.exists() else {}
    report.update({"val_questions": len(val), "threads": args.threads, "recipe": args.recipe})
    table = ["| model / setting | overall | colour | shape | yes/no |", "|---|---|---|---|---|"]

    def record(name, model_dir, settings, blank=False):
        done = report.get("accuracy", {}).get(name)
        acc = done or evaluate(model_dir, val, settings, args.threads, blank)
        report.setdefault("accuracy", {})[name] = {"settings": settings, **acc}
        report_path.write_text(json.dumps(report, indent=2) + "\n")
        table.append(row(name, acc))
        print(row(name, acc), flush=True)
        return acc

    t0 = time.time()
    model = train_demo_model(data, out / "easyvqa-tiny", threads=args.threads, recipe=args.recipe)
    report.setdefault("train_wall_seconds", round(time.time() - t0, 1))
    report["training"] = {k: v for k, v in json.loads((model / "training.json").read_text()).items()
                          if k != "history"}
    print(f"demo model trained in {report['train_wall_seconds']} s", flush=True)
    full = record("demo, full, cloze", model, {"scoring": "cloze"})
    record("demo, full, letter", model, {"scoring": "letter"})
    for name, settings in CHEAP.items():
        record(f"demo, {name}, cloze", model, {"scoring": "cloze", **settings})

    if not args.skip_blind:
        blind = train_demo_model(data, out / "easyvqa-tiny-blind", threads=args.threads,
                                 recipe=f"{args.recipe}-blind")
        record("blind baseline, real images, cloze", blind, {"scoring": "cloze"})
        record("blind baseline, blank images, cloze", blind, {"scoring": "cloze"}, blank=True)

    if not args.skip_finetunes:
        pool = {"pool": "learned", "pool_factor": 2}
        t0 = time.time()
        tuned = finetune(model, data / "train.parquet", "demo-learned-pool", pool,
                         out / "learned-pool", threads=args.threads, device="cpu")
        report["learned_pool_seconds"] = round(time.time() - t0, 1)
        record("demo + learned pool (4 tokens), cloze", tuned, {"scoring": "cloze", **pool})
        for name in ("pool-avg2 (4 tokens)", "tile-32 global-only (4 tokens)"):
            settings = CHEAP[name]
            t0 = time.time()
            tuned = finetune(model, data / "train.parquet", "demo-finetune", settings,
                             out / f"finetune-{name.split()[0]}", threads=args.threads,
                             device="cpu")
            report[f"finetune_seconds {name}"] = round(time.time() - t0, 1)
            record(f"demo-finetune at {name}, cloze", tuned, {"scoring": "cloze", **settings})

    report["full_cloze"] = full
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / "report.md").write_text(
        f"# Demo model on easy-VQA val ({len(val)} questions)\n\n"
        f"Trained with recipe `{args.recipe}` on {args.threads} threads: "
        f"{report['training']['total_seconds']} s in the training call (tokenizer, data, "
        f"training, validation; the last segment if it was resumed).\n\n"
        + "\n".join(table) + "\n")
    print((out / "report.md").read_text())


if __name__ == "__main__":
    main()
