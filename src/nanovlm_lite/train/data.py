"""Training batches: questions grouped by image, so each image runs the ViT once per batch.

A batch is `images_per_batch` images x up to `per_image` of each image's examples. easy-VQA
asks ~10 questions about every image, so sharing the image tokens across its questions
cuts the ViT's share of the work by the number of questions per image.
Which images and examples make step s is a pure function of (seed, s), so a resumed run
draws the very batches an uninterrupted one would, with no data-loader state to save.
Prompts are built as `Engine.prepare` builds them (same tiling rule, image string and
chat template), so the model trains on exactly what it is scored on.
"""
from __future__ import annotations

import functools
import hashlib
import io
import random
from dataclasses import dataclass

import torch
from PIL import Image

from ..model.image_processing import ProcessedImage, blank_like, process_image
from ..model.prompt import image_string, prompt_ids
from .objectives import Target, targets


@dataclass
class Batch:
    input_ids: torch.Tensor     # [B, T] right-padded
    mask: torch.Tensor          # [B, T] 1 = real token
    positions: torch.Tensor     # [B, T]
    tiles: torch.Tensor | None  # [n_tiles, 3, S, S] the batch's distinct images' tiles
    row_tiles: torch.Tensor     # [sum of rows' tiles] index into `tiles`, rows in order
    label_rows: torch.Tensor    # [n_targets] row of each target token
    label_cols: torch.Tensor    # [n_targets] position whose output predicts it
    labels: torch.Tensor        # [n_targets] the target token ids
    tiles_per_image: list[int]  # tiles of each distinct image, in `tiles` order

    @property
    def n_targets(self) -> int:
        return int(self.labels.numel())


class TrainSet:
    """Examples grouped by image for one point's settings and one objective."""

    def __init__(self, questions, engine, settings, objective: str, cache_images: bool = True):
        self.engine, self.settings = engine, settings
        self.cache_images = cache_images
        self._cache: dict[int, ProcessedImage] = {}
        self.index: dict[bytes, int] = {}  # sha1 of the image bytes -> image number
        index = self.index
        self.image_bytes: list[bytes] = []
        self.examples: list[list[Target]] = []
        for q in questions:
            key = hashlib.sha1(q.image_bytes).digest()
            if key not in index:
                index[key] = len(self.image_bytes)
                self.image_bytes.append(q.image_bytes)
                self.examples.append([])
            self.examples[index[key]].extend(targets(q, objective, engine.tokenizer, settings))
        if not self.image_bytes:
            raise ValueError("no training questions")
        self.rule = engine.tiling_rule(settings)
        self.tokens_per_tile = engine.tokens_per_tile(settings)

    @property
    def n_images(self) -> int:
        return len(self.image_bytes)

    @property
    def n_examples(self) -> int:
        return sum(len(e) for e in self.examples)

    def processed(self, i: int) -> ProcessedImage:
        if i in self._cache:
            return self._cache[i]
        image = Image.open(io.BytesIO(self.image_bytes[i])).convert("RGB")
        if self.settings.blank_images:  # the blind baseline: same size and tiling, no content
            image = blank_like(image)
        processed = process_image(image, self.rule)
        if self.cache_images:
            self._cache[i] = processed
        return processed

    @functools.lru_cache(maxsize=65536)
    def _prompt(self, img_str: str, text: str) -> tuple[int, ...]:
        return tuple(prompt_ids(self.engine.tokenizer, img_str, text))

    def image_str(self, processed: ProcessedImage) -> str:
        per_tile = [self.tokens_per_tile] * processed.n_tiles
        return image_string(self.engine.cfg, processed.grid, processed.has_global, per_tile)

    # ------------------------------------------------------------------ batch drawing
    def draw(self, seed: int, draw_index: int, images_per_batch: int, per_image: int
             ) -> list[tuple[int, int]]:
        """(image, example) pairs of the `draw_index`-th batch: images walk through a fresh
        permutation every epoch; examples are sampled without replacement per image."""
        n = self.n_images
        per_batch = min(images_per_batch, n)
        start = draw_index * per_batch
        images = []
        for g in range(start, start + per_batch):
            images.append(self._epoch_order(seed, g // n)[g % n])
        picks = []
        for img in dict.fromkeys(images):  # an epoch boundary may repeat an image: keep one
            rng = random.Random(f"{seed}:{draw_index}:{img}")
            count = len(self.examples[img])
            chosen = rng.sample(range(count), min(per_image, count))
            picks.extend((img, e) for e in sorted(chosen))
        return picks

    @functools.lru_cache(maxsize=4)
    def _epoch_order(self, seed: int, epoch: int) -> list[int]:
        order = list(range(self.n_images))
        random.Random(f"{seed}:epoch:{epoch}").shuffle(order)
        return order

    def batch(self, picks: list[tuple[int, int]]) -> Batch:
        distinct = list(dict.fromkeys(img for img, _ in picks))
        processed = {img: self.processed(img) for img in distinct}
        first_tile, tiles, offset = {}, [], 0
        for img in distinct:
            first_tile[img] = offset
            tiles.append(processed[img].tiles)
            offset += processed[img].n_tiles
        rows, row_tiles = [], []
        for img, e in picks:
            example = self.examples[img][e]
            p = processed[img]
            prompt = self._prompt(self.image_str(p), example.text)
            rows.append((prompt + example.ids, len(example.ids)))
            row_tiles.extend(range(first_tile[img], first_tile[img] + p.n_tiles))
        return collate(rows, torch.cat(tiles) if tiles else None, row_tiles,
                       self.engine.tokenizer.pad_token_id, [len(t) for t in tiles])


def collate(rows: list[tuple[tuple[int, ...], int]], tiles, row_tiles: list[int], pad: int,
            tiles_per_image: list[int]) -> Batch:
    """Right-pad (ids, n_target) rows; the last n_target ids of each row are the labels."""
    width = max(len(ids) for ids, _ in rows)
    input_ids = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    label_rows, label_cols, labels = [], [], []
    for r, (ids, n_target) in enumerate(rows):
        input_ids[r, : len(ids)] = torch.tensor(ids)
        mask[r, : len(ids)] = 1
        for k in range(len(ids) - n_target, len(ids)):
            label_rows.append(r)
            label_cols.append(k - 1)
            labels.append(ids[k])
    positions = torch.arange(width)[None].expand(len(rows), width).clone()
    return Batch(input_ids, mask, positions, tiles, torch.tensor(row_tiles, dtype=torch.long),
                 torch.tensor(label_rows), torch.tensor(label_cols), torch.tensor(labels),
                 tiles_per_image)
