"""`nanovlm-lite train`: run a named training recipe (train/recipes.py)."""
from __future__ import annotations

import argparse


def add_train_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("train", help="train the demo model or fine-tune a checkpoint with a recipe")
    p.add_argument("--recipe", required=True, help="recipe name (train/recipes.py), e.g. demo, aokvqa-mcq")
    p.add_argument("--model", default=None,
                   help="checkpoint directory or hub id to fine-tune (omit for from-scratch recipes)")
    p.add_argument("--data", required=True,
                   help="for from-scratch recipes: a directory with train.parquet/val.parquet; "
                        "for fine-tuning: a train parquet in the A-OKVQA schema (or such a directory)")
    p.add_argument("--out", required=True, help="output checkpoint directory")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:1 or auto")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="a point setting (YAML value) the model is trained at; repeatable")
    p.add_argument("--steps", type=int, default=None, help="override the recipe's step count")
    p.add_argument("--resume", action="store_true",
                   help="continue from OUT/trainer_state.pt if an interrupted run left one")
    return p


def train_command(args) -> int:
    raise NotImplementedError("train is being built (issue 4)")
