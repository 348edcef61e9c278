"""The generated demo scenes: deterministic, in the A-OKVQA schema, every question type
present, and every answer right by construction (checked against the drawn pixels)."""
import io
import random

import numpy as np
import pytest
from PIL import Image

from nanovlm_lite.data.aokvqa import load_questions
from nanovlm_lite.data.scenes import (BACKGROUND, COLORS, COUNTS, QUESTION_TYPES, SHAPES,
                                      _place, build_scenes_dataset, draw, questions_for)


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    out = tmp_path_factory.mktemp("scenes")
    return out, build_scenes_dataset(out, train_images=60, val_images=20, seed=3)


def test_same_seed_same_bytes_other_seed_other_images(scenes, tmp_path):
    out, paths = scenes
    again = build_scenes_dataset(tmp_path / "again", train_images=60, val_images=20, seed=3)
    for split in ("train", "val"):
        assert again[split].read_bytes() == paths[split].read_bytes()
    other = build_scenes_dataset(tmp_path / "other", train_images=60, val_images=20, seed=4)
    a = {q.image_bytes for q in load_questions(paths["train"])}
    b = {q.image_bytes for q in load_questions(other["train"])}
    assert len(a & b) < len(a) // 2


def test_schema_and_every_type_present(scenes):
    _, paths = scenes
    for split in ("train", "val"):
        qs = load_questions(paths[split])
        assert {q.extra["question_type"] for q in qs} == set(QUESTION_TYPES)
        for q in qs:
            assert q.choices[q.correct_choice_idx] in q.direct_answers
            assert len(set(q.choices)) == len(q.choices) >= 2
    train_images = {q.image_bytes for q in load_questions(paths["train"])}
    val_images = {q.image_bytes for q in load_questions(paths["val"])}
    assert len(train_images & val_images) <= 1   # separate RNG streams (a lone shape may repeat)


def _pixels(objects):
    return np.asarray(Image.open(io.BytesIO(draw(objects))).convert("RGB"))


def _regions(mask) -> int:
    """Connected regions (4-neighbour) of a boolean image."""
    seen, n = np.zeros_like(mask), 0
    for start in zip(*np.nonzero(mask)):
        if seen[start]:
            continue
        n, stack = n + 1, [start]
        while stack:
            y, x = stack.pop()
            if 0 <= y < mask.shape[0] and 0 <= x < mask.shape[1] and mask[y, x] and not seen[y, x]:
                seen[y, x] = True
                stack += [(y + 1, x), (y - 1, x), (y, x + 1), (y, x - 1)]
    return n


def test_answers_follow_the_pixels():
    """Recompute each answer from the image alone: colours present, count of connected
    regions, a shape's fill ratio of its box, and left/right from the colour's pixels."""
    for i in range(200):
        rng = random.Random(i)
        objects = _place(rng, rng.randint(1, 3))
        px = _pixels(objects)
        present = {name for name, rgb in COLORS.items() if (px == rgb).all(-1).any()}
        assert present == {o["color"] for o in objects}
        for text, answer, choices, qtype in questions_for(objects, rng):
            assert answer in choices
            if qtype == "count":
                assert answer == COUNTS[_regions((px != BACKGROUND).any(-1)) - 1]
            elif qtype == "shape":
                color = text.split("the ")[1].split(" object")[0]
                mask = (px == COLORS[color]).all(-1)
                ys, xs = np.nonzero(mask)
                fill = mask.sum() / ((np.ptp(ys) + 1) * (np.ptp(xs) + 1))
                expected = "square" if fill > 0.95 else "circle" if fill > 0.70 else "triangle"
                assert answer == expected, (text, fill)
            elif qtype == "color":
                shape = text.split("the ")[1].rstrip("?")
                assert [o["color"] for o in objects if o["shape"] == shape] == [answer]
            elif qtype == "yes/no":
                *_, color, shape = text.rstrip("?").split(" ")
                assert (answer == "yes") == any(o["color"] == color and o["shape"] == shape
                                                for o in objects)
            elif qtype == "position":
                a, b = text.split("the ")[1].split(" left")[0], text.split("the ")[2].rstrip("?")
                xa = [sum(o["box"][::2]) for o in objects if o["shape"] == a][0]
                xb = [sum(o["box"][::2]) for o in objects if o["shape"] == b][0]
                assert answer == ("left" if xa < xb else "right")


def test_objects_do_not_overlap_and_shapes_are_known():
    for i in range(100):
        rng = random.Random(i)
        objects = _place(rng, 3)
        assert {o["shape"] for o in objects} <= set(SHAPES)
        boxes = [o["box"] for o in objects]
        for j, a in enumerate(boxes):
            for b in boxes[j + 1:]:
                assert a[2] < b[0] or b[2] < a[0] or a[3] < b[1] or b[3] < a[1]


def test_negative_sizes_are_errors(tmp_path):
    with pytest.raises(ValueError, match="train_images must be >= 0"):
        build_scenes_dataset(tmp_path, train_images=-1)
