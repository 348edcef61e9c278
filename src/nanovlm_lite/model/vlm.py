"""The nanoVLM model on transformers' blocks: SigLIP ViT -> pixel-shuffle projector -> Llama.

Upstream's ViT and LM compute exactly what `SiglipVisionModel` and `LlamaForCausalLM`
compute (fused qkv split in thirds, rotate-half RoPE), so we build on those rather than
re-implementing attention. This file only wires the parts together.
"""
from __future__ import annotations

import torch
from torch import nn
from transformers import LlamaConfig, LlamaForCausalLM, SiglipVisionConfig, SiglipVisionModel

from .config import VLMConfig
from .projector import PixelShuffleProjector


def siglip_config(cfg: VLMConfig) -> SiglipVisionConfig:
    return SiglipVisionConfig(
        hidden_size=cfg.vit_hidden_dim, intermediate_size=cfg.vit_inter_dim,
        num_hidden_layers=cfg.vit_n_blocks, num_attention_heads=cfg.vit_n_heads,
        image_size=cfg.vit_img_size, patch_size=cfg.vit_patch_size, num_channels=3,
        layer_norm_eps=cfg.vit_ln_eps, hidden_act="gelu_pytorch_tanh",
        attention_dropout=cfg.vit_dropout, vision_use_head=False)


def llama_config(cfg: VLMConfig) -> LlamaConfig:
    return LlamaConfig(
        vocab_size=cfg.lm_vocab_size, hidden_size=cfg.lm_hidden_dim,
        intermediate_size=cfg.lm_inter_dim, num_hidden_layers=cfg.lm_n_blocks,
        num_attention_heads=cfg.lm_n_heads, num_key_value_heads=cfg.lm_n_kv_heads,
        head_dim=cfg.lm_head_dim, hidden_act="silu", rms_norm_eps=cfg.lm_rms_eps,
        max_position_embeddings=cfg.lm_max_position_embeddings,
        rope_parameters={"rope_type": "default", "rope_theta": float(cfg.lm_re_base)},
        tie_word_embeddings=cfg.lm_tie_weights, attention_bias=False, mlp_bias=False,
        attention_dropout=cfg.lm_dropout, bos_token_id=None, eos_token_id=None, pad_token_id=None)


class NanoVLM(nn.Module):
    def __init__(self, cfg: VLMConfig, attn_implementation: str = "sdpa"):
        super().__init__()
        self.cfg = cfg
        vcfg, lcfg = siglip_config(cfg), llama_config(cfg)
        vcfg._attn_implementation = attn_implementation
        lcfg._attn_implementation = attn_implementation
        self.vision = SiglipVisionModel(vcfg)
        self.projector = PixelShuffleProjector(cfg.vit_hidden_dim, cfg.lm_hidden_dim,
                                               cfg.mp_pixel_shuffle_factor)
        self.lm = LlamaForCausalLM(lcfg)
        if cfg.lm_tie_weights:
            self.lm.lm_head.weight = self.lm.model.embed_tokens.weight

    @property
    def vit(self):
        """The SigLIP transformer itself (transformers 4 wraps it in `.vision_model`)."""
        return getattr(self.vision, "vision_model", self.vision)

    @property
    def image_token_id(self) -> int:
        return self.cfg.lm_base_vocab_size  # the first extra token is <|image|>

    # --- vision side -------------------------------------------------------------------
    def vision_features(self, tiles: torch.Tensor, n_blocks: int | None = None,
                        settings=None) -> torch.Tensor:
        """ViT features [n_tiles, patches, D]. Tiles smaller or larger than the trained
        size get interpolated position embeddings; `n_blocks` runs only the first blocks;
        a point's `settings` may merge tokens (vit_merge_*) or run the later blocks on a
        coarser grid (vit_hourglass_*) inside the ViT (reduce/vit_merge, reduce/vit_hourglass)."""
        vm = self.vit
        interpolate = tiles.shape[-1] != self.cfg.vit_img_size
        hidden = vm.embeddings(tiles, interpolate_pos_encoding=interpolate)
        layers = vm.encoder.layers[: n_blocks or len(vm.encoder.layers)]
        if settings is not None and settings.vit_merge_ratio > 0:
            from ..reduce import vit_merge
            hidden = vit_merge.run_blocks(layers, hidden, settings.vit_merge_ratio,
                                          settings.vit_merge_start)
        elif settings is not None and settings.vit_hourglass_block is not None:
            from ..reduce import vit_hourglass
            hidden = vit_hourglass.run_blocks(layers, hidden, settings.vit_hourglass_block,
                                              settings.vit_hourglass_factor)
        else:
            for layer in layers:
                out = layer(hidden, attention_mask=None)
                hidden = out[0] if isinstance(out, tuple) else out
        return vm.post_layernorm(hidden)

    def encode_images(self, tiles: torch.Tensor, n_blocks: int | None = None) -> torch.Tensor:
        """Image tokens [n_tiles, tokens_per_tile, D_lm]."""
        return self.projector(self.vision_features(tiles, n_blocks))

    # --- language side -----------------------------------------------------------------
    def embed(self, input_ids: torch.Tensor, image_tokens: torch.Tensor | None) -> torch.Tensor:
        """Token embeddings with the <|image|> positions overwritten, in order, by the image
        tokens (all images of the batch flattened in batch order)."""
        embeds = self.lm.model.embed_tokens(input_ids)
        mask = input_ids == self.image_token_id
        n_slots = int(mask.sum())
        if image_tokens is None:
            if n_slots:
                raise ValueError(f"prompt has {n_slots} image tokens but no image was given")
            return embeds
        flat = image_tokens.reshape(-1, embeds.shape[-1]).to(embeds.dtype)
        if flat.shape[0] != n_slots:
            raise ValueError(f"prompt has {n_slots} <|image|> slots for {flat.shape[0]} image tokens")
        embeds = embeds.clone()
        embeds[mask] = flat
        return embeds
