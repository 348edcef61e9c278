"""The offline demo dataset: easy-VQA (PyPI `easy-vqa`) recast in the A-OKVQA schema.

easy-VQA has 64x64 PNGs with one coloured shape and questions whose answers are a colour,
a shape or yes/no. We turn each into a multiple-choice question (the answer plus same-kind
distractors), so the whole pipeline runs end to end with no network and a tiny model.
Everything is deterministic: each question's choices come from its own seeded RNG, so the
first N rows are the same whatever `max_train`/`max_val` is.

`yes_no_keep` thins the training split's yes/no questions (73% of easy-VQA, with an 82%
prior): at 1.0 a tiny model spends its steps on them and never learns shape; which ones
are kept is decided per question id, so the same on every machine. The evaluation split is
never thinned.
"""
from __future__ import annotations

import os
import random
from pathlib import Path

from .aokvqa import write_questions

SHAPES = ("circle", "rectangle", "triangle")
YES_NO = ("yes", "no")
N_COLOR_CHOICES = 4
N_DIRECT_ANSWERS = 10


def _easy_vqa():
    try:
        import easy_vqa
    except ImportError:
        raise ImportError("the demo dataset needs the `easy-vqa` package: "
                          "pip install 'nanovlm-lite[demo]' (or easy-vqa==1.0)") from None
    return easy_vqa


def answer_kinds() -> dict[str, str]:
    """Each easy-VQA answer -> its question_type: "color", "shape" or "yes/no"."""
    kinds = {}
    for a in _easy_vqa().get_answers():
        kinds[a] = "shape" if a in SHAPES else "yes/no" if a in YES_NO else "color"
    return kinds


def make_choices(answer: str, kinds: dict[str, str], rng: random.Random) -> list[str]:
    """The answer plus distractors of the same kind, shuffled by `rng`."""
    kind = kinds[answer]
    if kind == "color":
        colors = sorted(a for a, k in kinds.items() if k == "color")
        others = rng.sample([c for c in colors if c != answer], N_COLOR_CHOICES - 1)
    elif kind == "shape":
        others = [s for s in SHAPES if s != answer]
    else:
        others = [a for a in YES_NO if a != answer]
    choices = [answer, *others]
    rng.shuffle(choices)
    return choices


def _rows(split: str, questions, image_paths: dict[int, str], kinds, seed: int, limit: int | None,
          yes_no_keep: float = 1.0):
    texts, answers, image_ids = questions
    n = len(texts) if limit is None else min(limit, len(texts))
    images: dict[int, bytes] = {}  # images are shared across questions: read each PNG once
    for i in range(n):
        answer, image_id = answers[i], image_ids[i]
        if answer not in kinds:
            raise ValueError(f"easy-VQA {split} question {i}: answer {answer!r} is not in get_answers()")
        qid = f"easyvqa-{split}-{i:06d}"
        if kinds[answer] == "yes/no" and random.Random(f"{seed}:keep:{qid}").random() >= yes_no_keep:
            continue
        if image_id not in images:
            images[image_id] = Path(image_paths[image_id]).read_bytes()
        choices = make_choices(answer, kinds, random.Random(f"{seed}:{qid}"))
        yield {
            "question_id": qid,
            "question": texts[i],
            "choices": choices,
            "correct_choice_idx": choices.index(answer),
            "direct_answers": [answer] * N_DIRECT_ANSWERS,
            "difficult_direct_answer": False,
            "rationales": [],
            "image": {"bytes": images[image_id], "path": f"easyvqa/{split}/{image_id}.png"},
            "question_type": kinds[answer],
        }


def build_demo_dataset(out_dir: str | os.PathLike, max_train: int | None = None,
                       max_val: int | None = None, seed: int = 0,
                       yes_no_keep: float = 1.0) -> dict[str, Path]:
    """Write `train.parquet` and `val.parquet` (easy-VQA's test split) under `out_dir`;
    `max_train` caps the training questions read before `yes_no_keep` thins them."""
    for name, value in (("max_train", max_train), ("max_val", max_val)):
        if value is not None and value < 0:
            raise ValueError(f"{name} must be >= 0 or None, got {value}")
    if not 0.0 < yes_no_keep <= 1.0:
        raise ValueError(f"yes_no_keep must be in (0, 1], got {yes_no_keep}")
    ev = _easy_vqa()
    kinds = answer_kinds()
    out_dir = Path(out_dir)
    splits = {
        "train": (ev.get_train_questions(), ev.get_train_image_paths(), max_train),
        "val": (ev.get_test_questions(), ev.get_test_image_paths(), max_val),
    }
    paths = {}
    for split, (questions, image_paths, limit) in splits.items():
        keep = yes_no_keep if split == "train" else 1.0
        rows = _rows(split, questions, image_paths, kinds, seed, limit, keep)
        paths[split] = write_questions(rows, out_dir / f"{split}.parquet")
    return paths
