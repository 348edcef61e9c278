"""Upstream nanoVLM's image processor, without torchvision.

Resize so the long side hits the target and the short side rounds up to whole tiles
(PIL bicubic), cut row-major into square tiles, and prepend a global view (the whole
image squeezed to one tile, bilinear + antialias) whenever the grid is not 1x1.
Pixels stay in [0, 1]: nanoVLM has no mean/std normalisation.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image


@dataclass(frozen=True)
class TilingRule:
    """What decides the tile grid. Defaults come from the checkpoint's config."""
    tile_size: int                  # the tile side the image is cut into (upstream: vit_img_size)
    max_img_size: int
    resize_to_max_side_len: bool
    max_tiles: int | None = None    # cap on split tiles (ours, not upstream's)
    global_only: bool = False       # keep only the global view (ours)


def resized_size(width: int, height: int, rule: TilingRule) -> tuple[int, int]:
    """(new_width, new_height) exactly as upstream's DynamicResize computes them."""
    tile = rule.tile_size
    long_side, short_side = max(width, height), min(width, height)
    if rule.resize_to_max_side_len:
        target_long = rule.max_img_size
    else:
        target_long = min(rule.max_img_size, math.ceil(long_side / tile) * tile)
    scale = target_long / long_side
    target_short = max(tile, math.ceil(short_side * scale / tile) * tile)
    return (target_long, target_short) if width >= height else (target_short, target_long)


def tile_grid(width: int, height: int, rule: TilingRule) -> tuple[int, int]:
    """The (rows, cols) grid of split tiles for an image of this size, before any cap."""
    new_w, new_h = resized_size(width, height, rule)
    return new_h // rule.tile_size, new_w // rule.tile_size


def capped_grid(rows: int, cols: int, max_tiles: int | None) -> tuple[int, int]:
    """Shrink a grid to at most `max_tiles` split tiles, keeping its aspect ratio as well
    as whole tiles allow (the image is then resized to that grid)."""
    if max_tiles is None or rows * cols <= max_tiles:
        return rows, cols
    best = (1, 1)
    for r in range(1, rows + 1):
        for c in range(1, cols + 1):
            if r * c > max_tiles:
                continue
            # prefer more tiles, then the aspect ratio closest to the original
            key = (r * c, -abs(math.log((r / c) / (rows / cols))))
            if key > (best[0] * best[1], -abs(math.log((best[0] / best[1]) / (rows / cols)))):
                best = (r, c)
    return best


@dataclass
class ProcessedImage:
    tiles: torch.Tensor            # [n_tiles, 3, tile, tile] float32 in [0, 1]
    grid: tuple[int, int]          # (rows, cols) of the split tiles; (1, 1) means no split
    has_global: bool               # whether tiles[0] is the global view

    @property
    def n_tiles(self) -> int:
        return self.tiles.shape[0]


def to_rgb(image: Image.Image) -> Image.Image:
    """Upstream calls `Image.open(path).convert("RGB")`; palette, RGBA, L all go through it."""
    return image if image.mode == "RGB" else image.convert("RGB")


def blank_like(image: Image.Image) -> Image.Image:
    """A black RGB image of the same size: same tiling and FLOPs, no content (the blind
    baseline's input)."""
    return Image.new("RGB", image.size)


def pil_to_tensor(image: Image.Image) -> torch.Tensor:
    """torchvision's ToTensor for an RGB PIL image: uint8 HWC -> float32 CHW / 255."""
    array = np.asarray(image, dtype=np.uint8)
    return torch.from_numpy(array.copy()).permute(2, 0, 1).float().div(255.0)


def global_view(pixels: torch.Tensor, tile: int) -> torch.Tensor:
    return F.interpolate(pixels[None], size=(tile, tile), mode="bilinear",
                         align_corners=False, antialias=True)[0]


def process_image(image: Image.Image, rule: TilingRule) -> ProcessedImage:
    image = to_rgb(image)
    tile = rule.tile_size
    rows, cols = tile_grid(*image.size, rule)
    rows, cols = capped_grid(rows, cols, rule.max_tiles)
    resized = image.resize((cols * tile, rows * tile), Image.Resampling.BICUBIC)
    pixels = pil_to_tensor(resized)
    if rule.global_only:
        return ProcessedImage(global_view(pixels, tile)[None], (1, 1), True)
    split = (pixels.reshape(3, rows, tile, cols, tile)
             .permute(1, 3, 0, 2, 4).reshape(rows * cols, 3, tile, tile))
    if rows == 1 and cols == 1:
        return ProcessedImage(split, (1, 1), False)
    return ProcessedImage(torch.cat([global_view(pixels, tile)[None], split]), (rows, cols), True)
