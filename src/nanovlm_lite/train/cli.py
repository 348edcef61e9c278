"""`nanovlm-lite train`: run a named training recipe (train/recipes.py)."""
from __future__ import annotations

import argparse


def add_train_parser(subparsers) -> argparse.ArgumentParser:
    from ..argtypes import at_least, device
    p = subparsers.add_parser("train", help="train the demo model or fine-tune a checkpoint with a recipe")
    p.add_argument("--recipe", required=True,
                   help="recipe name (train/recipes.py): demo, demo-blind, demo-learned-pool, "
                        "demo-finetune, demo-distill, aokvqa-mcq, aokvqa-lora, aokvqa-distill, "
                        "aokvqa-distill-all")
    p.add_argument("--model", default=None,
                   help="checkpoint directory or hub id to fine-tune (omit for from-scratch recipes)")
    p.add_argument("--data", required=True,
                   help="a directory with train.parquet (and val.parquet, for validation) or a "
                        "train parquet in the A-OKVQA schema")
    p.add_argument("--val", default=None,
                   help="validation parquet (default: val.parquet beside the training data)")
    p.add_argument("--out", required=True, help="output checkpoint directory")
    p.add_argument("--threads", type=at_least(1), default=1)
    p.add_argument("--device", default="auto", type=device, help="cpu, cuda, cuda:1, mps or auto")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="a point setting (YAML value) to train at, e.g. --set pool=learned; repeatable")
    p.add_argument("--steps", type=at_least(1), default=None, help="override the recipe's step count")
    p.add_argument("--teacher", default=None, metavar="DIR",
                   help="the teacher's outputs for a recipe that distils (demo-distill, "
                        "aokvqa-distill): a directory with outputs.safetensors + teacher.json "
                        "(train/teacher.py: compute_teacher; the pipeline's teacher rule)")
    p.add_argument("--resume", action="store_true",
                   help="continue from OUT/trainer_state.pt left by an interrupted run of the same "
                        "setup (without it, training starts over)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def train_command(args) -> int:
    from ..errors import InputError
    from ..study import parse_sets
    from .recipes import finetune, get_recipe, train_demo_model
    try:
        recipe = get_recipe(args.recipe)
    except ValueError as e:
        raise InputError(str(e)) from None
    overrides = {"steps": args.steps} if args.steps is not None else None
    settings = parse_sets(args.set)
    if recipe.from_scratch:
        if args.model:
            raise InputError(f"recipe {args.recipe!r} trains from scratch: drop --model")
        if settings:
            raise InputError(f"recipe {args.recipe!r} trains the demo model at its full setting: "
                             f"drop --set (fine-tuning recipes take point settings)")
        out = train_demo_model(args.data, args.out, threads=args.threads, recipe=args.recipe,
                               overrides=overrides, resume=args.resume,
                               progress=not args.no_progress, val_data=args.val,
                               teacher=args.teacher)
    else:
        if not args.model:
            raise InputError(f"recipe {args.recipe!r} fine-tunes a checkpoint: give --model")
        out = finetune(args.model, args.data, args.recipe, settings, args.out, threads=args.threads,
                       device=args.device, overrides=overrides, resume=args.resume,
                       progress=not args.no_progress, val_data=args.val, teacher=args.teacher)
    print(out)
    return 0
