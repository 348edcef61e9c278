"""Tokenizer and prompt, built the way upstream nanoVLM builds them.

The tokenizer is the config's `lm_tokenizer` plus the 66 extra tokens (in config order)
and the config's chat template, with pad = eos. The image string is
`<|global_image|>` + n x `<|image|>`, then, when the image was split, `<row_i_col_j>` +
n x `<|image|>` per tile, row-major; it goes in front of the user's text in one user turn.
"""
from __future__ import annotations

import os
from pathlib import Path

from transformers import AutoTokenizer

from ..hub import HUB_ID, is_path_like  # noqa: F401  (re-exported)
from .config import VLMConfig


class TokenizerError(ValueError):
    """A tokenizer that is missing, or not the one the checkpoint was trained with."""




def resolve_tokenizer_source(cfg: VLMConfig, model_dir: Path | None, override: str | None) -> str:
    """Where to load the tokenizer from: --tokenizer, a directory relative to the
    checkpoint (the fixture's `lm_tokenizer: "tokenizer"`), a `tokenizer/` folder that our
    download step puts beside the weights, or else the hub id in `lm_tokenizer`. An
    `lm_tokenizer` that is not a hub id (org/name) means a directory beside the checkpoint:
    that path is returned even when it is missing, so build_tokenizer names it."""
    if override:
        return os.path.expanduser(str(override)) if is_path_like(str(override)) else str(override)
    if model_dir is not None:
        relative = Path(model_dir) / cfg.lm_tokenizer
        if relative.is_dir():
            return str(relative)
        beside = Path(model_dir) / "tokenizer"
        if beside.is_dir():
            return str(beside)
        if not HUB_ID.fullmatch(cfg.lm_tokenizer):
            return str(relative)
    return cfg.lm_tokenizer


def _from_pretrained(source: str, **kwargs):
    """AutoTokenizer from a directory; a hub id from the local cache first, then the hub
    (not reachable: a HubUnreachableError naming the tokenizer, without retries)."""
    from huggingface_hub import constants

    from ..hub import (HubUnreachableError, hub_error_message, hub_offline, hub_reachable,
                       is_unreachable_error)
    if Path(source).is_dir():
        return AutoTokenizer.from_pretrained(source, **kwargs)
    what = f"tokenizer {source!r} (a hub id; no such local directory)"
    try:
        return AutoTokenizer.from_pretrained(source, local_files_only=True, **kwargs)
    except OSError:
        if hub_offline():
            raise HubUnreachableError(hub_error_message(what, "HF_HUB_OFFLINE=1 is set")) from None
    if not hub_reachable():
        raise HubUnreachableError(hub_error_message(
            what, f"cannot connect to {constants.ENDPOINT}")) from None
    try:
        return AutoTokenizer.from_pretrained(source, **kwargs)
    except OSError as e:
        if is_unreachable_error(e) or is_unreachable_error(e.__cause__ or e):
            raise HubUnreachableError(hub_error_message(what, type(e).__name__)) from None
        raise TokenizerError(f"tokenizer {source!r}: {(str(e).splitlines() or [''])[0]}") from None


def build_tokenizer(cfg: VLMConfig, source: str):
    """The checkpoint's tokenizer: upstream's extra tokens and chat template added. A
    missing local directory is a TokenizerError at once (no hub call)."""
    if not Path(source).is_dir() and (is_path_like(source) or not HUB_ID.fullmatch(source)):
        relative = source != cfg.lm_tokenizer and Path(source).name == Path(cfg.lm_tokenizer).name
        note = (f" (config.json's lm_tokenizer {cfg.lm_tokenizer!r}, looked for beside the "
                f"checkpoint)" if relative else "")
        raise TokenizerError(f"tokenizer {source!r}: no such directory{note}, and not a hub id "
                             f"(org/name); put the tokenizer there or pass --tokenizer DIR|HUB_ID")
    tokenizer = _from_pretrained(
        source, use_fast=True, extra_special_tokens=cfg.vlm_extra_tokens,
        chat_template=cfg.lm_chat_template)
    tokenizer.pad_token = tokenizer.eos_token
    expected = cfg.lm_base_vocab_size
    image_id = tokenizer.convert_tokens_to_ids(cfg.vlm_extra_tokens["image_token"])
    if image_id != expected:
        raise TokenizerError(
            f"tokenizer {source}: {cfg.vlm_extra_tokens['image_token']} got id {image_id}, but the "
            f"model expects the extra tokens to start at lm_base_vocab_size={expected}; "
            f"is this the tokenizer the checkpoint was trained with?")
    return tokenizer


def image_string(cfg: VLMConfig, grid: tuple[int, int], has_global: bool,
                 tokens_per_tile: list[int] | int | None = None) -> str:
    """The image part of the user turn. `tokens_per_tile` (one count per tile, global view
    first) lets token-reduction settings carry exactly as many image tokens as they keep."""
    extra = cfg.vlm_extra_tokens
    rows, cols = grid
    n_tiles = (1 if has_global else 0) + (0 if (rows, cols) == (1, 1) and has_global else rows * cols)
    if tokens_per_tile is None:
        tokens_per_tile = cfg.mp_image_token_length
    counts = [tokens_per_tile] * n_tiles if isinstance(tokens_per_tile, int) else list(tokens_per_tile)
    if len(counts) != n_tiles:
        raise ValueError(f"tokens_per_tile has {len(counts)} entries for {n_tiles} tiles")
    parts = [extra["global_image_token"] + extra["image_token"] * counts[0]]
    if (rows, cols) != (1, 1):
        k = 1
        for i in range(rows):
            for j in range(cols):
                parts.append(extra[f"r{i + 1}c{j + 1}"] + extra["image_token"] * counts[k])
                k += 1
    return "".join(parts)


def prompt_ids(tokenizer, image_str: str, text: str, answer_prefix: str = "") -> list[int]:
    """Token ids of the chat prompt with the generation prompt on (what upstream feeds)."""
    messages = [{"role": "user", "content": image_str + text}]
    ids = tokenizer.apply_chat_template(messages, tokenize=True, add_generation_prompt=True,
                                        return_dict=False)
    if answer_prefix:
        ids = list(ids) + tokenizer.encode(answer_prefix, add_special_tokens=False)
    return list(ids)
