"""Checkpoints in upstream nanoVLM's format: find them, map their tensor names, load, save.

Upstream stores `config.json` + `model.safetensors` with its own module names (fused ViT
qkv, `decoder.blocks.*`, the tied embedding stored once as `decoder.head.weight`). We map
those names onto transformers' SigLIP and Llama modules and back, so what we train loads
in upstream's `from_pretrained`, and what upstream released loads here.
"""
from __future__ import annotations

import functools
import os
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from ..files import readable
from ..hub import HubUnreachableError, hub_error_message
from .config import VLMConfig, load_config, preset_names, preset_path, save_config

TIED_METADATA = {"decoder.token_embedding.weight": "decoder.head.weight"}


class CheckpointError(ValueError):
    """A checkpoint's tensors do not match its config (missing, extra or misshaped)."""


# ---------------------------------------------------------------------------------------
# name mapping
@functools.lru_cache(maxsize=1)
def vision_prefix() -> str:
    """Where SigLIP's weights sit in our state dict: transformers 5 flattened the
    `vision_model` wrapper that transformers 4 had."""
    from transformers import SiglipVisionConfig, SiglipVisionModel
    tiny = SiglipVisionConfig(hidden_size=8, intermediate_size=8, num_hidden_layers=1,
                              num_attention_heads=1, image_size=4, patch_size=2)
    with torch.device("meta"):
        model = SiglipVisionModel(tiny)
    return "vision.vision_model." if hasattr(model, "vision_model") else "vision."


def _vit_block(i: int) -> dict[str, str]:
    up, ours = f"vision_encoder.blocks.{i}.", vision_prefix() + f"encoder.layers.{i}."
    return {up + "ln1.weight": ours + "layer_norm1.weight", up + "ln1.bias": ours + "layer_norm1.bias",
            up + "ln2.weight": ours + "layer_norm2.weight", up + "ln2.bias": ours + "layer_norm2.bias",
            up + "attn.out_proj.weight": ours + "self_attn.out_proj.weight",
            up + "attn.out_proj.bias": ours + "self_attn.out_proj.bias",
            up + "mlp.fc1.weight": ours + "mlp.fc1.weight", up + "mlp.fc1.bias": ours + "mlp.fc1.bias",
            up + "mlp.fc2.weight": ours + "mlp.fc2.weight", up + "mlp.fc2.bias": ours + "mlp.fc2.bias"}


def _lm_block(i: int) -> dict[str, str]:
    up, ours = f"decoder.blocks.{i}.", f"lm.model.layers.{i}."
    names = {"attn.q_proj": "self_attn.q_proj", "attn.k_proj": "self_attn.k_proj",
             "attn.v_proj": "self_attn.v_proj", "attn.out_proj": "self_attn.o_proj",
             "mlp.gate_proj": "mlp.gate_proj", "mlp.up_proj": "mlp.up_proj",
             "mlp.down_proj": "mlp.down_proj", "norm1": "input_layernorm",
             "norm2": "post_attention_layernorm"}
    return {f"{up}{a}.weight": f"{ours}{b}.weight" for a, b in names.items()}


def simple_name_map(cfg: VLMConfig) -> dict[str, str]:
    """Upstream name -> our name, for every tensor that maps one to one."""
    names = {
        "vision_encoder.patch_embedding.conv.weight": vision_prefix() + "embeddings.patch_embedding.weight",
        "vision_encoder.patch_embedding.conv.bias": vision_prefix() + "embeddings.patch_embedding.bias",
        "vision_encoder.layer_norm.weight": vision_prefix() + "post_layernorm.weight",
        "vision_encoder.layer_norm.bias": vision_prefix() + "post_layernorm.bias",
        "MP.proj.weight": "projector.proj.weight",
        "decoder.norm.weight": "lm.model.norm.weight",
        "decoder.head.weight": "lm.lm_head.weight",
    }
    for i in range(cfg.vit_n_blocks):
        names.update(_vit_block(i))
    for i in range(cfg.lm_n_blocks):
        names.update(_lm_block(i))
    return names


def rope_inv_freq(cfg: VLMConfig) -> torch.Tensor:
    """The buffer upstream saves as decoder.rotary_embd.inv_freq."""
    d = cfg.lm_head_dim
    return 1.0 / (cfg.lm_re_base ** (torch.arange(0, d, 2).float() / d))


def expected_upstream_shapes(cfg: VLMConfig) -> dict[str, tuple[int, ...]]:
    """Every tensor upstream's model.safetensors holds for this config, with its shape."""
    D, I, p = cfg.vit_hidden_dim, cfg.vit_inter_dim, cfg.vit_patch_size
    d, li, s = cfg.lm_hidden_dim, cfg.lm_inter_dim, cfg.mp_pixel_shuffle_factor
    kv = cfg.lm_n_kv_heads * cfg.lm_head_dim
    shapes = {
        "vision_encoder.patch_embedding.conv.weight": (D, 3, p, p),
        "vision_encoder.patch_embedding.conv.bias": (D,),
        "vision_encoder.patch_embedding.position_embedding": (1, cfg.patches_per_side ** 2, D),
        "vision_encoder.layer_norm.weight": (D,), "vision_encoder.layer_norm.bias": (D,),
        "MP.proj.weight": (d, D * s * s),
        "decoder.norm.weight": (d,), "decoder.head.weight": (cfg.lm_vocab_size, d),
        "decoder.rotary_embd.inv_freq": (cfg.lm_head_dim // 2,),
    }
    for i in range(cfg.vit_n_blocks):
        b = f"vision_encoder.blocks.{i}."
        shapes.update({b + "ln1.weight": (D,), b + "ln1.bias": (D,), b + "ln2.weight": (D,),
                       b + "ln2.bias": (D,), b + "attn.qkv_proj.weight": (3 * D, D),
                       b + "attn.qkv_proj.bias": (3 * D,), b + "attn.out_proj.weight": (D, D),
                       b + "attn.out_proj.bias": (D,), b + "mlp.fc1.weight": (I, D),
                       b + "mlp.fc1.bias": (I,), b + "mlp.fc2.weight": (D, I), b + "mlp.fc2.bias": (D,)})
    for i in range(cfg.lm_n_blocks):
        b = f"decoder.blocks.{i}."
        shapes.update({b + "attn.q_proj.weight": (d, d), b + "attn.k_proj.weight": (kv, d),
                       b + "attn.v_proj.weight": (kv, d), b + "attn.out_proj.weight": (d, d),
                       b + "mlp.gate_proj.weight": (li, d), b + "mlp.up_proj.weight": (li, d),
                       b + "mlp.down_proj.weight": (d, li), b + "norm1.weight": (d,),
                       b + "norm2.weight": (d,)})
    if not cfg.lm_tie_weights:
        shapes["decoder.token_embedding.weight"] = (cfg.lm_vocab_size, d)
    return shapes


def upstream_to_ours(tensors: dict[str, torch.Tensor], cfg: VLMConfig) -> dict[str, torch.Tensor]:
    names = simple_name_map(cfg)
    ours = {names[k]: v for k, v in tensors.items() if k in names}
    pos = tensors["vision_encoder.patch_embedding.position_embedding"]
    ours[vision_prefix() + "embeddings.position_embedding.weight"] = pos.reshape(pos.shape[-2:])
    for i in range(cfg.vit_n_blocks):
        up, dst = f"vision_encoder.blocks.{i}.attn.qkv_proj.", vision_prefix() + f"encoder.layers.{i}.self_attn."
        for kind in ("weight", "bias"):
            q, k, v = tensors[up + kind].chunk(3, dim=0)
            ours.update({f"{dst}q_proj.{kind}": q, f"{dst}k_proj.{kind}": k, f"{dst}v_proj.{kind}": v})
    if cfg.lm_tie_weights:
        ours["lm.model.embed_tokens.weight"] = tensors["decoder.head.weight"]
    else:
        ours["lm.model.embed_tokens.weight"] = tensors["decoder.token_embedding.weight"]
    return ours


def ours_to_upstream(state: dict[str, torch.Tensor], cfg: VLMConfig) -> dict[str, torch.Tensor]:
    names = {v: k for k, v in simple_name_map(cfg).items()}
    tensors = {names[k]: v for k, v in state.items() if k in names}
    pos = state[vision_prefix() + "embeddings.position_embedding.weight"]
    tensors["vision_encoder.patch_embedding.position_embedding"] = pos[None]
    for i in range(cfg.vit_n_blocks):
        src = vision_prefix() + f"encoder.layers.{i}.self_attn."
        for kind in ("weight", "bias"):
            tensors[f"vision_encoder.blocks.{i}.attn.qkv_proj.{kind}"] = torch.cat(
                [state[f"{src}{n}_proj.{kind}"] for n in "qkv"], dim=0)
    if not cfg.lm_tie_weights:
        tensors["decoder.token_embedding.weight"] = state["lm.model.embed_tokens.weight"]
    tensors["decoder.rotary_embd.inv_freq"] = rope_inv_freq(cfg)
    return {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}


# ---------------------------------------------------------------------------------------
# reading and checking
def check_tensors(shapes: dict[str, tuple[int, ...]], cfg: VLMConfig, source: str) -> None:
    expected = expected_upstream_shapes(cfg)
    missing = sorted(set(expected) - set(shapes))
    extra = sorted(set(shapes) - set(expected))
    wrong = sorted(f"{k}: {tuple(shapes[k])} (config says {expected[k]})"
                   for k in set(expected) & set(shapes) if tuple(shapes[k]) != expected[k])
    if missing or extra or wrong:
        lines = [f"{source}: the tensors do not match its config.json"]
        if missing:
            lines.append(f"  missing ({len(missing)}): {', '.join(missing[:10])}"
                         + (" ..." if len(missing) > 10 else ""))
        if extra:
            lines.append(f"  unexpected ({len(extra)}): {', '.join(extra[:10])}"
                         + (" ..." if len(extra) > 10 else ""))
        if wrong:
            lines.append(f"  wrong shape ({len(wrong)}): {'; '.join(wrong[:10])}"
                         + (" ..." if len(wrong) > 10 else ""))
        raise CheckpointError("\n".join(lines))


def read_upstream_tensors(path: Path, cfg: VLMConfig) -> dict[str, torch.Tensor]:
    try:
        with safe_open(str(path), framework="pt") as f:
            shapes = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
            check_tensors(shapes, cfg, str(path))
            return {k: f.get_tensor(k) for k in f.keys()}
    except CheckpointError:
        raise
    except Exception as e:  # safetensors raises its own errors for truncated files
        raise CheckpointError(f"{path}: cannot read as safetensors ({e})") from None


def save_upstream_checkpoint(model, directory) -> Path:
    """Writes config.json + model.safetensors exactly as upstream's save_pretrained would."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors = ours_to_upstream(model.state_dict(), model.cfg)
    tmp = directory / "model.safetensors.tmp"
    save_file(tensors, str(tmp), metadata=dict(TIED_METADATA) if model.cfg.lm_tie_weights else None)
    readable(tmp)  # safetensors writes 0600
    os.replace(tmp, directory / "model.safetensors")
    save_config(model.cfg, directory)
    return directory


# ---------------------------------------------------------------------------------------
# finding a checkpoint: a directory, a preset name, a config.json, or a hub id
TOKENIZER_FILES = ["tokenizer*", "special_tokens_map.json", "vocab.json", "merges.txt"]


def _tokenizer_files(folder: Path) -> list[Path]:
    """The tokenizer's own files in `folder` (what TOKENIZER_FILES names), nothing else the
    hub repo or an earlier download left in the snapshot (weights, READMEs, configs)."""
    import fnmatch
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and any(fnmatch.fnmatch(p.name, pat) for pat in TOKENIZER_FILES))


def link_weights(src: Path, dst: Path) -> None:
    """`dst` as a hard link to the blob behind the hub cache's snapshot symlink `src`, so
    the 1.8 GB checkpoint is not on disk twice; a symlink to the blob when the cache is on
    another filesystem (hard links cannot cross one). Never a copy."""
    blob = Path(src).resolve()
    try:
        os.link(blob, dst)
    except OSError:
        os.symlink(blob, dst)


def download_model(repo_id: str, dest=None, revision: str | None = None) -> Path:
    """Fetch config.json + model.safetensors through huggingface_hub (cached, revision
    pinnable). With `dest`: config.json copied there, the weights linked (`link_weights`),
    and only the tokenizer's own files copied into dest/tokenizer/, all in a `.partial`
    folder first so an interrupted download is never taken as done.

    A hub that cannot be reached is found with one connect, then only the cache is asked:
    an uncached model fails at once instead of after half a minute of retries."""
    import shutil

    from huggingface_hub import constants, hf_hub_download, snapshot_download

    from ..hub import hub_cache_dir, hub_offline, hub_reachable, is_unreachable_error
    offline = hub_offline()
    reason = "HF_HUB_OFFLINE=1 is set" if offline else None
    if not offline and not hub_reachable():
        offline, reason = True, f"cannot connect to {constants.ENDPOINT}"
    opts = dict(revision=revision, cache_dir=hub_cache_dir(), local_files_only=offline)
    try:
        config_path = Path(hf_hub_download(repo_id, "config.json", **opts))
        weights_path = Path(hf_hub_download(repo_id, "model.safetensors", **opts))
        cfg = load_config(config_path)
        tokenizer_dir = config_path.parent / cfg.lm_tokenizer
        if dest is not None and not tokenizer_dir.is_dir():
            tokenizer_dir = Path(snapshot_download(
                cfg.lm_tokenizer, cache_dir=opts["cache_dir"], local_files_only=offline,
                allow_patterns=TOKENIZER_FILES))
    except Exception as e:
        if is_unreachable_error(e):
            raise HubUnreachableError(hub_error_message(f"model {repo_id!r}",
                                                        reason or type(e).__name__)) from None
        raise
    if dest is None:
        return config_path.parent
    dest = Path(dest)
    tmp = dest.with_name(dest.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "tokenizer").mkdir(parents=True)
    shutil.copyfile(config_path, tmp / "config.json")
    link_weights(weights_path, tmp / "model.safetensors")
    for f in _tokenizer_files(tokenizer_dir):
        shutil.copyfile(f, tmp / "tokenizer" / f.name)
    shutil.rmtree(dest, ignore_errors=True)
    os.replace(tmp, dest)
    return dest


def resolve_model(model: str, revision: str | None = None) -> tuple[Path, Path | None]:
    """(config path, weights path or None). Accepts a checkpoint directory, a config.json,
    a preset name (architecture only, no weights) or a hub id (org/name). A name meant as a
    local path (./x, ~/x, /x, a/b/c, or org/name where org/ is a local folder) that does not
    exist is a CheckpointError saying so, never a hub lookup."""
    from .prompt import HUB_ID, is_path_like
    text = str(model)
    path = Path(text).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise CheckpointError(f"{path}: no config.json (expected upstream nanoVLM's format: "
                                  f"config.json + model.safetensors)")
        weights = path / "model.safetensors"
        return path / "config.json", weights if weights.exists() else None
    if path.is_file():
        if path.suffix == ".json":
            return path, None
        raise CheckpointError(f"model {text!r}: a file, not a checkpoint; give the directory that "
                              f"holds config.json + model.safetensors, a config.json, a preset "
                              f"({', '.join(preset_names())}) or a hub id (org/name)")
    preset = preset_path(text)
    if preset is not None:
        return preset, None
    first = Path(text).parts[0] if Path(text).parts else text
    local_parent = "/" in text and Path(first).expanduser().is_dir()
    if is_path_like(text) or local_parent or path.suffix in (".json", ".safetensors"):
        where = (f" ({first}/ exists here, so this names a local directory, not a hub id)"
                 if local_parent and not is_path_like(text) else "")
        raise CheckpointError(f"model {text!r}: no such directory or file{where}; a checkpoint "
                              f"directory holds config.json + model.safetensors")
    if not HUB_ID.fullmatch(text):
        raise CheckpointError(
            f"model {text!r}: not a checkpoint directory, a config.json, a preset "
            f"({', '.join(preset_names())}) or a hub id of the form org/name")
    snapshot = download_model(text, revision=revision)
    return snapshot / "config.json", snapshot / "model.safetensors"
