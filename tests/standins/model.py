"""`lusxvr/nanoVLM` and its tokenizer repo, as hub-cache repos.

The checkpoint is in upstream's format with the released image geometry (512 px tiles,
patch 16, pixel shuffle 4, max_img_size 2048, resize_to_max_side_len, the 66 extra
tokens) and depths (ViT 12 blocks, LM 32), so every point of config/config.yaml is valid
on it; the widths are tiny and the weights random, so it computes in seconds and its
answers mean nothing. The tokenizer is the SmolLM2-shaped stand-in BPE
(nanovlm_lite.model.standin_tokenizer) with the released base vocabulary size.
"""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

from .hub import add_repo

MODEL_ID = "lusxvr/nanoVLM"
TOKENIZER_ID = "HuggingFaceTB/SmolLM2-360M-Instruct"
TINY_WIDTHS = dict(vit_hidden_dim=32, vit_inter_dim=64, vit_n_heads=2, lm_hidden_dim=64,
                   lm_inter_dim=128, lm_n_heads=4, lm_n_kv_heads=2)
# transformers 5 reads a hub repo's config.json before its tokenizer files
TOKENIZER_REPO_CONFIG = {"architectures": ["LlamaForCausalLM"], "model_type": "llama",
                         "vocab_size": 49152, "bos_token_id": 1, "eos_token_id": 2}


def standin_config():
    """The released config (the nanovlm-460m preset) at tiny widths."""
    import dataclasses

    from nanovlm_lite.model.config import load_config, preset_path
    cfg = load_config(preset_path("nanovlm-460m"))
    return dataclasses.replace(cfg, **TINY_WIDTHS)


def add_model(cache, seed: int = 0) -> None:
    """Both repos into hub cache `cache`."""
    import torch

    from nanovlm_lite.model.checkpoint import save_upstream_checkpoint
    from nanovlm_lite.model.load import build_model
    from nanovlm_lite.model.standin_tokenizer import standin_tokenizer_dir
    cfg = standin_config()
    with tempfile.TemporaryDirectory() as tmp:
        torch.manual_seed(seed)
        model = build_model(cfg).float()
        ckpt = save_upstream_checkpoint(model, Path(tmp) / "ckpt")
        add_repo(cache, MODEL_ID, {"config.json": ckpt / "config.json",
                                   "model.safetensors": ckpt / "model.safetensors",
                                   "README.md": b"# stand-in for lusxvr/nanoVLM\n"})
        tok = standin_tokenizer_dir(cfg.lm_base_vocab_size, Path(tmp) / "tok")
        files = {p.name: p for p in tok.iterdir() if p.is_file()}
        files["config.json"] = json.dumps(TOKENIZER_REPO_CONFIG).encode()
        add_repo(cache, TOKENIZER_ID, files)
