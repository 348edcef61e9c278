"""The search split: questions held out of the training split, so that the search selects
on questions that no recipe trains on and the report never uses.

Whole images are held out (every question about a held-out image goes with it): a recipe
that trained on one question about an image has seen the image. Images are drawn in a
seeded order until at least `n_questions` questions are held out. The rest of the
training split is written beside it (`fit`), and every training rule of a study with a
search reads that one instead.
"""
from __future__ import annotations

import hashlib
import random
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..data.aokvqa import DatasetError, check_parquet
from ..files import readable


def image_key(image) -> str:
    """Which image a row is about: its bytes' hash, else its path (an {bytes, path} struct)."""
    if isinstance(image, dict):
        if image.get("bytes"):
            return hashlib.sha1(image["bytes"]).hexdigest()
        if image.get("path"):
            return "path:" + image["path"]
    return "none"


def held_out_rows(keys: list[str], n_questions: int, seed: int) -> set[int]:
    """Row indices of whole images, drawn in a seeded order, until >= n_questions rows."""
    rows_of: dict[str, list[int]] = {}
    for i, key in enumerate(keys):
        rows_of.setdefault(key, []).append(i)
    order = sorted(rows_of)
    random.Random(f"search-split:{seed}").shuffle(order)
    held: set[int] = set()
    for key in order:
        if len(held) >= n_questions:
            break
        held.update(rows_of[key])
    return held


def _write(table: pa.Table, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(table, tmp)
    readable(tmp)
    tmp.replace(path)


def split_for_search(train_path, fit_path, search_path, n_questions: int, seed: int) -> dict:
    """Write `search_path` (the held-out questions, in file order) and `fit_path` (the rest)
    from the training parquet; returns the counts."""
    n_rows = check_parquet(train_path)
    table = pq.read_table(train_path)
    keys = [image_key(v) for v in table.column("image").to_pylist()]
    if n_questions >= n_rows:
        raise DatasetError(f"{train_path}: search holdout_questions {n_questions} leaves nothing "
                           f"to train on ({n_rows} questions in the training split)")
    held = held_out_rows(keys, n_questions, seed)
    mask = pa.array([i in held for i in range(n_rows)])
    search, fit = table.filter(mask), table.filter(pc.invert(mask))
    _write(search, Path(search_path))
    _write(fit, Path(fit_path))
    return {"search_questions": search.num_rows, "fit_questions": fit.num_rows,
            "search_images": len({keys[i] for i in held})}
