"""The demo's own scenes: generated images and questions in the A-OKVQA schema.

Why not only easy-VQA: its images hold one large shape and 73% of its questions are
yes/no with an 82% prior, so a tiny model scores well on colour and priors alone and no
token or resolution cut can be told from a free one. Here each 64 px image holds one to
three shapes of two sizes at random places, and every question needs the image and often
its detail: the shape of an object given its colour (small ones lose their corners at low
resolution), the colour of a given shape, how many objects there are, whether a given
coloured shape is there (yes/no balanced) and which of two shapes is further left.
Everything is drawn without anti-aliasing from a seeded RNG per image, so the same seed
gives the same bytes on any machine.
"""
from __future__ import annotations

import io
import os
import random
from pathlib import Path

from .aokvqa import write_questions

SIZE = 64
BACKGROUND = (245, 245, 245)
COLORS = {"red": (220, 40, 40), "green": (30, 160, 50), "blue": (40, 80, 230),
          "yellow": (235, 200, 20)}
SHAPES = ("circle", "square", "triangle")
COUNTS = ("one", "two", "three")
SIDES = ("left", "right")
SMALL, LARGE = (9, 13), (18, 26)   # object sizes in px (inclusive range)
QUESTION_TYPES = ("shape", "color", "count", "yes/no", "position")
N_DIRECT_ANSWERS = 10
DEFAULT_TRAIN_IMAGES = 8000
DEFAULT_VAL_IMAGES = 400


def _place(rng: random.Random, n: int) -> list[dict]:
    """n objects with distinct (colour, shape), sizes and non-overlapping boxes."""
    combos = rng.sample([(c, s) for c in COLORS for s in SHAPES], n)
    objects: list[dict] = []
    for color, shape in combos:
        for _ in range(200):
            size = rng.randint(*(SMALL if rng.random() < 0.5 else LARGE))
            x, y = rng.randint(1, SIZE - size - 1), rng.randint(1, SIZE - size - 1)
            box = (x, y, x + size, y + size)
            if all(box[0] > o["box"][2] + 2 or box[2] < o["box"][0] - 2 or
                   box[1] > o["box"][3] + 2 or box[3] < o["box"][1] - 2 for o in objects):
                objects.append({"color": color, "shape": shape, "box": box})
                break
    return objects


def draw(objects: list[dict]) -> bytes:
    """The scene as PNG bytes (no anti-aliasing: integer pixels, the same everywhere)."""
    from PIL import Image, ImageDraw
    img = Image.new("RGB", (SIZE, SIZE), BACKGROUND)
    pen = ImageDraw.Draw(img)
    for o in objects:
        x0, y0, x1, y1 = o["box"]
        fill = COLORS[o["color"]]
        if o["shape"] == "circle":
            pen.ellipse(o["box"], fill=fill)
        elif o["shape"] == "square":
            pen.rectangle(o["box"], fill=fill)
        else:
            pen.polygon([((x0 + x1) // 2, y0), (x1, y1), (x0, y1)], fill=fill)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def _unique(objects, key):
    values = [o[key] for o in objects]
    return [o for o in objects if values.count(o[key]) == 1]


def questions_for(objects: list[dict], rng: random.Random) -> list[tuple[str, str, list[str], str]]:
    """(question, answer, choices, question_type) for one scene, one of each type it allows."""
    out = []
    by_color = _unique(objects, "color")
    if by_color:
        o = rng.choice(by_color)
        out.append((f"What shape is the {o['color']} object?", o["shape"], list(SHAPES), "shape"))
    by_shape = _unique(objects, "shape")
    if by_shape:
        o = rng.choice(by_shape)
        out.append((f"What color is the {o['shape']}?", o["color"], list(COLORS), "color"))
    out.append(("How many objects are there?", COUNTS[len(objects) - 1], list(COUNTS), "count"))
    present = {(o["color"], o["shape"]) for o in objects}
    if rng.random() < 0.5:
        color, shape = rng.choice(sorted(present))
        answer = "yes"
    else:
        color, shape = rng.choice(sorted({(c, s) for c in COLORS for s in SHAPES} - present))
        answer = "no"
    out.append((f"Is there a {color} {shape}?", answer, list(("yes", "no")), "yes/no"))
    pairs = [(a, b) for a in by_shape for b in by_shape
             if a is not b and abs((a["box"][0] + a["box"][2]) - (b["box"][0] + b["box"][2])) >= 16]
    if pairs:
        a, b = rng.choice(pairs)
        side = "left" if a["box"][0] + a["box"][2] < b["box"][0] + b["box"][2] else "right"
        out.append((f"Is the {a['shape']} left or right of the {b['shape']}?", side,
                    list(SIDES), "position"))
    return out


def _rows(split: str, n_images: int, seed: int):
    for i in range(n_images):
        rng = random.Random(f"scenes:{seed}:{split}:{i}")
        objects = _place(rng, rng.randint(1, 3))
        png = draw(objects)
        for k, (text, answer, choices, qtype) in enumerate(questions_for(objects, rng)):
            rng.shuffle(choices)
            yield {
                "question_id": f"scenes-{split}-{i:06d}-{k}",
                "question": text,
                "choices": choices,
                "correct_choice_idx": choices.index(answer),
                "direct_answers": [answer] * N_DIRECT_ANSWERS,
                "difficult_direct_answer": False,
                "rationales": [],
                "image": {"bytes": png, "path": f"scenes/{split}/{i:06d}.png"},
                "question_type": qtype,
            }


def build_scenes_dataset(out_dir: str | os.PathLike, train_images: int | None = None,
                         val_images: int | None = None, seed: int = 0) -> dict[str, Path]:
    """Write `train.parquet` and `val.parquet` of generated scenes under `out_dir`; the
    two splits draw from separate RNG streams, so no image repeats between them."""
    sizes = {"train": DEFAULT_TRAIN_IMAGES if train_images is None else train_images,
             "val": DEFAULT_VAL_IMAGES if val_images is None else val_images}
    for name, value in sizes.items():
        if value < 0:
            raise ValueError(f"{name}_images must be >= 0 or None, got {value}")
    out_dir = Path(out_dir)
    return {split: write_questions(_rows(split, n, seed), out_dir / f"{split}.parquet")
            for split, n in sizes.items()}
