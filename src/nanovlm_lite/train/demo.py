"""The offline demo model's architecture and tokenizer: nanoVLM at toy size.

Same design as the released model (SigLIP-style ViT, pixel-shuffle projector, Llama LM
with grouped-query attention and a tied head), sized for easy-VQA's 64 px images so it
trains from scratch on 2 CPU cores in minutes: one 64 px tile per image, 8 px patches
(an 8x8 grid), pixel shuffle 2 -> 16 image tokens, ViT and LM 128 wide x 3 blocks.
"""
from __future__ import annotations

from pathlib import Path

from ..model.config import VLMConfig
from .tokenizer import corpus_lines, train_bpe_tokenizer

TOKENIZER_DIR = "tokenizer"  # relative to the checkpoint, as in the parity fixture


def demo_config(base_vocab_size: int, **overrides) -> VLMConfig:
    """The demo architecture for a tokenizer of `base_vocab_size` tokens; `overrides` are
    VLMConfig fields (a recipe may change the shape)."""
    fields = dict(
        vit_hidden_dim=128, vit_inter_dim=512, vit_patch_size=8, vit_img_size=64,
        vit_n_heads=4, vit_n_blocks=3,
        lm_hidden_dim=128, lm_inter_dim=384, lm_n_heads=4, lm_n_kv_heads=2, lm_n_blocks=3,
        lm_base_vocab_size=base_vocab_size, lm_vocab_size=base_vocab_size + 66,
        lm_max_position_embeddings=1024, lm_max_length=1024,
        lm_model_type="none", lm_tokenizer=TOKENIZER_DIR, vit_model_type="none",
        mp_pixel_shuffle_factor=2, max_img_size=64, resize_to_max_side_len=True,
        vlm_load_backbone_weights=False, hf_repo_name="nanoVLM-easyvqa-tiny")
    fields.update(overrides)
    patches = fields["vit_img_size"] // fields["vit_patch_size"]
    fields.setdefault("mp_image_token_length", (patches // fields["mp_pixel_shuffle_factor"]) ** 2)
    cfg = VLMConfig(**fields)
    cfg.check("demo config")
    return cfg


def init_lm(model, std: float) -> None:
    """Draw the LM's weights again at `std` (transformers' Llama default is 0.02): from
    scratch, the demo recipe learned shape sooner with the LM at 0.06 (docs/demo.md, "How
    the demo model was made to see")."""
    model.lm.config.initializer_range = std
    model.lm.apply(model.lm._init_weights)


def build_demo_tokenizer(questions, out_dir, vocab_size: int = 512) -> int:
    """Train the demo tokenizer on the questions' text into `out_dir`/tokenizer; returns
    its base vocabulary size."""
    return train_bpe_tokenizer(corpus_lines(questions), Path(out_dir) / TOKENIZER_DIR, vocab_size)
