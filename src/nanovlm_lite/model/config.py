"""Upstream nanoVLM's `VLMConfig`, field for field (commit 4e0c096).

A checkpoint's config.json holds exactly these fields; upstream refuses unknown keys,
and so do we, so a config that loads here also loads in upstream's `from_pretrained`.
This dataclass is the single source of truth for every shape in the model.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

PRESET_DIR = Path(__file__).parent / "presets"


class ConfigError(ValueError):
    """A model config.json is malformed or holds fields upstream does not know."""


def _default_extra_tokens() -> dict[str, str]:
    tokens = {"image_token": "<|image|>", "global_image_token": "<|global_image|>"}
    for r in range(1, 9):
        for c in range(1, 9):
            tokens[f"r{r}c{c}"] = f"<row_{r}_col_{c}>"
    return tokens


@dataclass
class VLMConfig:
    vit_hidden_dim: int = 768
    vit_inter_dim: int = 4 * 768
    vit_patch_size: int = 16
    vit_img_size: int = 512
    vit_n_heads: int = 12
    vit_dropout: float = 0.0
    vit_n_blocks: int = 12
    vit_ln_eps: float = 1e-6
    vit_cls_flag: bool = False
    vit_model_type: str = "google/siglip2-base-patch16-512"

    lm_hidden_dim: int = 960
    lm_inter_dim: int = 2560
    lm_rms_eps: float = 1e-5
    lm_re_base: int = 100000
    lm_max_position_embeddings: int = 8192
    lm_base_vocab_size: int = 49152
    extra_token_amount: int = 66
    lm_vocab_size: int = 49152 + 66
    lm_n_heads: int = 15
    lm_n_kv_heads: int = 5
    lm_dropout: float = 0.0
    lm_n_blocks: int = 32
    lm_attn_scaling: float = 1.0
    lm_max_length: int = 4096
    lm_use_tokens: bool = False
    lm_tie_weights: bool = True
    lm_model_type: str = "HuggingFaceTB/SmolLM2-360M-Instruct"
    lm_tokenizer: str = "HuggingFaceTB/SmolLM2-360M-Instruct"
    lm_chat_template: str = (
        "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + "
        "message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}"
        "{{ '<|im_start|>assistant\n' }}{% endif %}")

    mp_pixel_shuffle_factor: int = 4
    mp_image_token_length: int = 64

    max_img_size: int = 2048
    resize_to_max_side_len: bool = True

    vlm_extra_tokens: dict[str, str] = field(default_factory=_default_extra_tokens)
    vlm_load_backbone_weights: bool = True
    vlm_checkpoint_path: str = "checkpoints"
    hf_repo_name: str = "nanoVLM"

    # --- derived shapes (not fields) ---
    @property
    def lm_head_dim(self) -> int:
        return self.lm_hidden_dim // self.lm_n_heads

    @property
    def patches_per_side(self) -> int:
        return self.vit_img_size // self.vit_patch_size

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict, source: str = "config") -> "VLMConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(
                f"{source}: unknown key(s) {unknown}; upstream nanoVLM's VLMConfig has no such "
                f"field and would refuse this config. Known keys: {sorted(known)}")
        from ..fieldtypes import check_value, field_types
        data = dict(data)
        types = field_types(cls)
        for key, value in data.items():
            try:
                data[key] = check_value(value, types[key])
            except ValueError as e:
                raise ConfigError(f"{source}: {key} must be {e}, got {value!r}") from None
        cfg = cls(**data)
        cfg.check(source)
        return cfg

    def check(self, source: str = "config") -> None:
        def bad(msg):
            raise ConfigError(f"{source}: {msg}")
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.type == "int" and value < 1:
                bad(f"{f.name} must be >= 1, got {value}")
            if f.name.endswith("_dropout") and not 0.0 <= value < 1.0:
                bad(f"{f.name} must be in [0, 1), got {value}")
            if f.name.endswith(("_eps", "_scaling")) and not value > 0:
                bad(f"{f.name} must be > 0, got {value}")
        missing = [k for k in ("image_token", "global_image_token") if k not in self.vlm_extra_tokens]
        if missing:
            bad(f"vlm_extra_tokens lacks {missing} (upstream's image tokens)")
        if self.vit_img_size % self.vit_patch_size:
            bad(f"vit_img_size {self.vit_img_size} is not a multiple of vit_patch_size "
                f"{self.vit_patch_size}")
        if self.patches_per_side % self.mp_pixel_shuffle_factor:
            bad(f"the {self.patches_per_side}x{self.patches_per_side} patch grid is not divisible "
                f"by mp_pixel_shuffle_factor {self.mp_pixel_shuffle_factor}")
        tokens = (self.patches_per_side // self.mp_pixel_shuffle_factor) ** 2
        if tokens != self.mp_image_token_length:
            bad(f"mp_image_token_length {self.mp_image_token_length} != {tokens} tokens that a "
                f"{self.vit_img_size}px tile makes with patch {self.vit_patch_size} and pixel "
                f"shuffle {self.mp_pixel_shuffle_factor}")
        if self.lm_hidden_dim % self.lm_n_heads or self.lm_n_heads % self.lm_n_kv_heads:
            bad("lm_hidden_dim must divide by lm_n_heads and lm_n_heads by lm_n_kv_heads")
        if self.vit_hidden_dim % self.vit_n_heads:
            bad("vit_hidden_dim must divide by vit_n_heads")
        if self.lm_vocab_size != self.lm_base_vocab_size + self.extra_token_amount:
            bad(f"lm_vocab_size {self.lm_vocab_size} != lm_base_vocab_size + extra_token_amount")
        if len(self.vlm_extra_tokens) != self.extra_token_amount:
            bad(f"vlm_extra_tokens has {len(self.vlm_extra_tokens)} entries, extra_token_amount "
                f"says {self.extra_token_amount}")
        if self.vit_cls_flag:
            bad("vit_cls_flag true is not supported (the released model has no CLS token)")
        if self.lm_use_tokens:
            bad("lm_use_tokens true is not supported (the released model feeds embeddings)")


def load_config(path) -> VLMConfig:
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except json.JSONDecodeError as e:
        raise ConfigError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a JSON object of VLMConfig fields")
    return VLMConfig.from_dict(data, source=str(path))


def save_config(cfg: VLMConfig, directory) -> Path:
    """Writes config.json exactly as upstream's save_pretrained does (asdict, indent 4)."""
    path = Path(directory) / "config.json"
    path.write_text(json.dumps(cfg.to_dict(), indent=4))
    return path


def preset_names() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.json"))


def preset_path(name: str) -> Path | None:
    path = PRESET_DIR / f"{name}.json"
    return path if path.exists() else None
