"""A point's settings: every knob of a study point, validated in one place.

A point is data (a name and these settings), never a code path. Everything that
changes what the model computes, or how it is scored, lives here, so results can be
written with the exact settings that made them.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields
from typing import Any

from .fieldtypes import check_value, field_types, parse_text

SCORING_MODES = ("letter", "cloze", "generate")
POOL_METHODS = (None, "avg", "max", "learned")
SELECT_METHODS = (None, "norm", "attention", "random")
PRUNE_SETTINGS = ("prune_vit_mlp", "prune_lm_mlp")   # ratios kept; see model/widths.py


class SettingsError(ValueError):
    """A point's settings are unknown, malformed or impossible together."""


@dataclass(frozen=True)
class PointSettings:
    # scoring
    scoring: str = "letter"              # letter | cloze | generate
    prompt: str = "default"              # a template name (evaluate/prompts.py) or a literal template
    max_new_tokens: int = 10             # generate mode: greedy decode budget
    cloze_normalise: str = "mean"        # cloze: "mean" log-prob per choice token, or "sum"
    direct_answer: bool = False          # also score direct answers (greedy short answer)
    # input: blank images (same size, so same tiles and FLOPs): the no-vision baseline
    blank_images: bool = False
    # tiling (None = the checkpoint's own value)
    max_img_size: int | None = None
    resize_to_max_side_len: bool | None = None
    max_tiles: int | None = None         # cap on split tiles (the global view is extra)
    global_only: bool = False            # only the global view, no split tiles
    # tile resolution (None = the checkpoint's vit_img_size); position embeddings interpolated
    tile_size: int | None = None
    # image-token reduction after the projector
    pool: str | None = None              # avg | max | learned
    pool_factor: int = 2
    select: str | None = None            # norm | attention | random
    keep_ratio: float = 1.0
    # inside the LM (FastV)
    fastv_layer: int | None = None
    fastv_ratio: float = 0.0
    # depth
    vit_blocks: int | None = None        # run only the first L ViT blocks
    skip_lm_blocks: tuple[int, ...] = field(default_factory=tuple)
    # inside the ViT: token merging with unmerge (reduce/vit_merge.py) or an hourglass
    # (reduce/vit_hourglass.py); the patch grid the projector needs stays intact
    vit_merge_ratio: float = 0.0         # patches merged per block (0 = off), from vit_merge_start
    vit_merge_start: int = 0             # first ViT block that merges
    vit_hourglass_block: int | None = None   # blocks from this one on run on a pooled grid
    vit_hourglass_factor: int = 2        # the grid pooled f x f
    # structured width pruning (prune/): the ratio of MLP channels kept, the same in every
    # block; like `finetune`, they say how the point's checkpoint is made (the pipeline's
    # prune rule writes it with the narrower widths in config.json), not how it runs
    prune_vit_mlp: float = 1.0           # ViT MLP channels kept (1 = not pruned)
    prune_lm_mlp: float = 1.0            # LM MLP channels kept (1 = not pruned)
    # fine-tuning recipe name (train/recipes.py); None = the checkpoint as it is
    finetune: str | None = None
    seed: int = 0

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None, where: str = "point settings") -> "PointSettings":
        """Settings from a mapping (a YAML point, metrics.json, --set), each value checked
        strictly against its field's declared type (fieldtypes.py), then `validate()`."""
        if data is not None and not isinstance(data, dict):
            raise SettingsError(f"{where}: settings must be a mapping of setting -> value, "
                                f"got {data!r}")
        data = dict(data or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise SettingsError(
                f"{where}: unknown setting(s) {unknown}; expected some of {sorted(known)}")
        types = field_types(cls)
        for key, value in data.items():
            try:
                data[key] = check_value(value, types[key])
            except ValueError as e:
                raise SettingsError(f"{where}: {key} must be {e}, got {value!r}") from None
        settings = cls(**data)
        settings.validate(where)
        return settings

    @classmethod
    def parse_setting(cls, key: str, text: str, where: str = "--set") -> Any:
        """One `--set KEY=VALUE` value read by the field's declared type: `true`/`false`
        for booleans, digits for integers, `null` for optional fields, `[3, 4]` for lists."""
        types = field_types(cls)
        if key not in types:
            raise SettingsError(f"{where}: unknown setting {key!r}; expected one of "
                                f"{sorted(types)}")
        try:
            return parse_text(text, types[key])
        except ValueError as e:
            raise SettingsError(f"{where}: {key} takes {e}, got {text!r}") from None

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    def changed(self) -> dict[str, Any]:
        """Only the settings that differ from the defaults (for labels and tables)."""
        default = PointSettings().to_dict()
        return {k: v for k, v in self.to_dict().items() if v != default[k]}

    @property
    def prunes(self) -> bool:
        """Whether the point's checkpoint is a width-pruned copy of the base model."""
        return any(getattr(self, name) < 1.0 for name in PRUNE_SETTINGS)

    def validate(self, where: str = "point settings") -> None:
        """Checks that need no model config; `check_against(cfg)` does the rest."""
        def bad(msg):
            raise SettingsError(f"{where}: {msg}")
        if self.scoring not in SCORING_MODES:
            bad(f"scoring must be one of {SCORING_MODES}, got {self.scoring!r}")
        if self.cloze_normalise not in ("mean", "sum"):
            bad(f"cloze_normalise must be 'mean' or 'sum', got {self.cloze_normalise!r}")
        if self.max_new_tokens < 1:
            bad(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if self.pool not in POOL_METHODS:
            bad(f"pool must be one of {POOL_METHODS}, got {self.pool!r}")
        if self.select not in SELECT_METHODS:
            bad(f"select must be one of {SELECT_METHODS}, got {self.select!r}")
        if self.pool is not None and self.pool_factor < 2:
            bad(f"pool_factor must be >= 2 when pool is set, got {self.pool_factor}")
        if not 0.0 < self.keep_ratio <= 1.0:
            bad(f"keep_ratio must be in (0, 1], got {self.keep_ratio}")
        if self.keep_ratio < 1.0 and self.select is None:
            bad("keep_ratio < 1 needs select: norm | attention | random")
        if self.select is not None and self.pool is not None:
            bad("select and pool both reduce image tokens; use one of them per point")
        if not 0.0 <= self.fastv_ratio < 1.0:
            bad(f"fastv_ratio must be in [0, 1), got {self.fastv_ratio}")
        if self.fastv_ratio > 0 and self.fastv_layer is None:
            bad("fastv_ratio > 0 needs fastv_layer (the LM layer after which tokens drop)")
        if self.fastv_ratio > 0 and self.fastv_layer in self.skip_lm_blocks:
            bad(f"fastv_layer {self.fastv_layer} is in skip_lm_blocks: FastV ranks tokens by the "
                f"attention of a block that runs")
        if self.global_only and self.max_tiles is not None:
            bad("global_only keeps only the global view, so max_tiles would be ignored; use one")
        if self.max_tiles is not None and self.max_tiles < 1:
            bad(f"max_tiles must be >= 1, got {self.max_tiles}")
        if self.vit_blocks is not None and self.vit_blocks < 1:
            bad(f"vit_blocks must be >= 1, got {self.vit_blocks}")
        if self.max_img_size is not None and self.max_img_size < 1:
            bad(f"max_img_size must be >= 1, got {self.max_img_size}")
        if self.tile_size is not None and self.tile_size < 1:
            bad(f"tile_size must be >= 1 (null = the checkpoint's vit_img_size), got "
                f"{self.tile_size}")
        if self.pool_factor < 1:
            bad(f"pool_factor must be >= 1, got {self.pool_factor}")
        if self.fastv_layer is not None and self.fastv_layer < 0:
            bad(f"fastv_layer must be >= 0 (an LM block index), got {self.fastv_layer}")
        negative = [b for b in self.skip_lm_blocks if b < 0]
        if negative:
            bad(f"skip_lm_blocks holds LM block indices (>= 0), got {negative}")
        twice = sorted({b for b in self.skip_lm_blocks if self.skip_lm_blocks.count(b) > 1})
        if twice:
            bad(f"skip_lm_blocks lists block(s) {twice} more than once")
        if not 0.0 <= self.vit_merge_ratio <= 0.75:
            bad(f"vit_merge_ratio must be in [0, 0.75] (at most the 3 of every 2x2 patches "
                f"that are not destinations merge), got {self.vit_merge_ratio}")
        if self.vit_merge_start < 0:
            bad(f"vit_merge_start must be >= 0 (a ViT block index), got {self.vit_merge_start}")
        if self.vit_hourglass_block is not None and self.vit_hourglass_block < 0:
            bad(f"vit_hourglass_block must be >= 0 (a ViT block index), got "
                f"{self.vit_hourglass_block}")
        if self.vit_hourglass_factor < 2:
            bad(f"vit_hourglass_factor must be >= 2, got {self.vit_hourglass_factor}")
        if self.vit_merge_ratio > 0 and self.vit_hourglass_block is not None:
            bad("vit_merge_ratio and vit_hourglass_block both reduce the ViT's tokens; use one "
                "of them per point")
        if self.select == "attention" and (self.vit_merge_ratio > 0
                                           or self.vit_hourglass_block is not None):
            bad("select: attention ranks patches by the last ViT block's attention, which "
                "runs on merged or pooled tokens under vit_merge / vit_hourglass; use select: "
                "norm or random with them")
        for name in PRUNE_SETTINGS:  # pruning: ratios of channels kept
            ratio = getattr(self, name)
            if not 0.0 < ratio <= 1.0:
                bad(f"{name} must be in (0, 1] (the ratio of MLP channels kept; 1 = not "
                    f"pruned), got {ratio}")
        from .evaluate.prompts import check_template
        try:
            check_template(self.prompt)
        except ValueError as e:
            bad(str(e))

    def check_against(self, cfg, where: str = "point settings") -> None:
        """Checks that need the model's shapes (a VLMConfig): a SettingsError naming every
        problem `problems_against` finds."""
        problems = self.problems_against(cfg)
        if problems:
            raise SettingsError(f"{where}: " + "; ".join(problems))

    def problems_against(self, cfg) -> list[str]:
        """Every way these settings do not fit the model's shapes (a VLMConfig: tile size
        against patch and pixel shuffle, depths and block indices against the ViT's and
        LM's block counts, merging, hourglass and pooling against the grids), one line
        each; empty when they fit. The jobs (`check_against`) and the study's check of all
        points at once (study_check.py) both ask this."""
        out = []
        bad = out.append
        step = cfg.vit_patch_size * cfg.mp_pixel_shuffle_factor
        tile = self.tile_size or cfg.vit_img_size
        if tile % step:
            bad(f"tile_size {tile} must be a multiple of patch size x pixel-shuffle factor = {step}")
        grid = tile // cfg.vit_patch_size // cfg.mp_pixel_shuffle_factor
        if self.pool is not None and grid and grid % self.pool_factor:
            bad(f"pool_factor {self.pool_factor} must divide the {grid}x{grid} token grid of a "
                f"{tile}px tile")
        if self.vit_blocks is not None and self.vit_blocks > cfg.vit_n_blocks:
            bad(f"vit_blocks {self.vit_blocks} > the model's {cfg.vit_n_blocks} ViT blocks")
        vit_blocks = min(self.vit_blocks or cfg.vit_n_blocks, cfg.vit_n_blocks)
        patch_grid = tile // cfg.vit_patch_size
        if self.vit_merge_ratio > 0 and patch_grid % 2:
            bad(f"vit_merge_ratio needs an even patch grid (destinations are one patch per 2x2 "
                f"cell); a {tile}px tile has {patch_grid}x{patch_grid}")
        if self.vit_merge_ratio > 0 and self.vit_merge_start >= vit_blocks:
            bad(f"vit_merge_start {self.vit_merge_start} is not one of the {vit_blocks} ViT "
                f"blocks that run (0..{vit_blocks - 1}): nothing would merge")
        if self.vit_hourglass_block is not None:
            if self.vit_hourglass_block >= vit_blocks:
                bad(f"vit_hourglass_block {self.vit_hourglass_block} is not one of the "
                    f"{vit_blocks} ViT blocks that run (0..{vit_blocks - 1})")
            if patch_grid % self.vit_hourglass_factor:
                bad(f"vit_hourglass_factor {self.vit_hourglass_factor} must divide the "
                    f"{patch_grid}x{patch_grid} patch grid of a {tile}px tile")
        for b in self.skip_lm_blocks:
            if not 0 <= b < cfg.lm_n_blocks:
                bad(f"skip_lm_blocks has {b}; the LM has blocks 0..{cfg.lm_n_blocks - 1}")
        if self.fastv_layer is not None and not 0 <= self.fastv_layer < cfg.lm_n_blocks:
            bad(f"fastv_layer {self.fastv_layer} not in 0..{cfg.lm_n_blocks - 1}")
        running = [b for b in range(cfg.lm_n_blocks) if b not in self.skip_lm_blocks]
        if not running:
            bad("skip_lm_blocks skips every LM block")
        elif (self.fastv_ratio > 0 and self.fastv_layer is not None
              and self.fastv_layer < cfg.lm_n_blocks and self.fastv_layer >= running[-1]):
            bad(f"fastv_layer {self.fastv_layer} is at or after the last LM block that runs "
                f"({running[-1]}): dropping tokens there saves nothing")
        return out
