"""A git repository standing in for upstream nanoVLM: upstream's module layout
(`data/processors.py`, `models/vision_language_model.py`, no __init__.py) and the call
signatures our parity runner uses, computing with our own engine. Cloned by file:// URL."""
from __future__ import annotations

import subprocess
import textwrap
from pathlib import Path

PROCESSORS = '''
from transformers import AutoTokenizer
from nanovlm_lite.model.image_processing import TilingRule, process_image

def get_tokenizer(name, extra_special_tokens=None, chat_template=None):
    tok = AutoTokenizer.from_pretrained(name, extra_special_tokens=extra_special_tokens,
                                        chat_template=chat_template)
    tok.pad_token = tok.eos_token
    return tok

def get_image_processor(max_img_size, tile, resize_to_max_side_len=False):
    def process(image):
        p = process_image(image, TilingRule(tile, max_img_size, resize_to_max_side_len))
        return p.tiles, p.grid
    return process

def get_image_string(tokenizer, grids, n):
    s = ""
    for n_h, n_w in grids:
        s += tokenizer.global_image_token + tokenizer.image_token * n
        if n_h == 1 and n_w == 1:
            continue
        for i in range(n_h):
            for j in range(n_w):
                s += getattr(tokenizer, f"r{i+1}c{j+1}") + tokenizer.image_token * n
    return s
'''

VLM = '''
import torch
from nanovlm_lite.model.load import load_model
from nanovlm_lite.engine import Engine, Prompt
from nanovlm_lite.settings import PointSettings

class VisionLanguageModel:
    @classmethod
    def from_pretrained(cls, path):
        self = cls()
        self.model, _ = load_model(path)
        self.cfg = self.model.cfg
        self.decoder = type("D", (), {"head": self.model.lm.lm_head})()
        return self

    def eval(self):
        return self

    def __call__(self, input_ids, tiles):
        tokens = self.model.encode_images(tiles)
        embeds = self.model.embed(input_ids, tokens)
        out = self.model.lm.model(inputs_embeds=embeds)
        return out.last_hidden_state, None

    def generate(self, input_ids, tiles, max_new_tokens=5, greedy=False):
        engine = Engine(self.model, type("T", (), {"pad_token_id": 0, "eos_token_id": -1})())
        from nanovlm_lite.model.image_processing import ProcessedImage
        prompt = Prompt(input_ids[0].tolist(), ProcessedImage(tiles, (1, 1), False))
        return torch.tensor(engine.generate([prompt], PointSettings(), max_new_tokens, False))
'''


def write_layout(root) -> Path:
    """The stand-in's files under `root` (upstream's folders, no __init__.py)."""
    root = Path(root)
    (root / "models").mkdir(parents=True, exist_ok=True)
    (root / "data").mkdir(exist_ok=True)
    (root / "data" / "processors.py").write_text(textwrap.dedent(PROCESSORS))
    (root / "models" / "vision_language_model.py").write_text(textwrap.dedent(VLM))
    (root / "README.md").write_text("Stand-in for huggingface/nanoVLM (tests/standins).\n")
    return root


def make_repo(root) -> tuple[str, str]:
    """A git repository with the stand-in committed; (file:// url, commit)."""
    root = write_layout(root)

    def git(*args):
        return subprocess.run(["git", "-c", "user.name=standin", "-c", "user.email=standin@local",
                               "-c", "init.defaultBranch=main", *args], cwd=root, check=True,
                              capture_output=True, text=True).stdout.strip()
    git("init", "--quiet")
    git("add", "-A")
    git("commit", "--quiet", "-m", "stand-in for upstream nanoVLM")
    return root.resolve().as_uri(), git("rev-parse", "HEAD")
