"""The parity check's plumbing: upstream's code runs in a subprocess on dataset samples and
a disagreement fails with a report. The real upstream clone needs the network, so a
stand-in with upstream's module layout and call signatures plays it here."""
import json
import textwrap

import numpy as np

import pytest

from nanovlm_lite.parity import ParityError, run_parity

from helpers import make_parquet

FAKE_PROCESSORS = '''
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

FAKE_VLM = '''
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


@pytest.fixture()
def fake_upstream(tmp_path):
    root = tmp_path / "nanoVLM"
    (root / "models").mkdir(parents=True)
    (root / "data").mkdir()
    (root / "data" / "processors.py").write_text(textwrap.dedent(FAKE_PROCESSORS))
    (root / "models" / "vision_language_model.py").write_text(textwrap.dedent(FAKE_VLM))
    return root


def test_parity_passes_and_writes_a_report(fake_upstream, fixture_dir, tmp_path):
    data = make_parquet(tmp_path / "q.parquet", n=2)
    report = run_parity(fake_upstream, fixture_dir, data, tmp_path / "parity.json", n_samples=2)
    written = json.loads((tmp_path / "parity.json").read_text())
    assert report["ok"] and written["ok"] and len(written["cases"]) == 2
    assert all(c["same_input_ids"] and c["same_greedy_tokens"] for c in written["cases"])
    assert max(c["logits_max_abs_diff"] for c in written["cases"]) < 1e-4


def test_parity_fails_past_the_tolerance(fixture_dir, tmp_path, monkeypatch):
    data = make_parquet(tmp_path / "q.parquet", n=1)
    report = run_parity_with_shift(fixture_dir, data, tmp_path, monkeypatch)
    assert report["ok"] is False
    assert report["cases"][0]["logits_max_abs_diff"] == pytest.approx(0.01, abs=1e-4)
    assert report["cases"][0]["same_input_ids"] and report["cases"][0]["same_greedy_tokens"]


def run_parity_with_shift(fixture_dir, data, tmp_path, monkeypatch):
    """Upstream's side replaced by our own numbers with the logits shifted by 0.01."""
    import nanovlm_lite.parity as parity
    from PIL import Image

    import nanovlm_lite
    engine = nanovlm_lite.load(str(fixture_dir))

    def fake_upstream(upstream_dir, model_dir, cases, out_npz, max_new_tokens=4):
        out = {}
        for k, case in enumerate(cases):
            p = engine.prepare(Image.open(case["image"]), case["text"])
            out[f"case{k}_input_ids"] = np.array(p.input_ids)
            out[f"case{k}_grid"] = np.array(p.image.grid)
            out[f"case{k}_tiles"] = p.image.tiles.numpy()
            out[f"case{k}_logits"] = engine.next_token_logits([p])[0].numpy() + 0.01
            out[f"case{k}_tokens"] = np.array(engine.generate([p], max_new_tokens=max_new_tokens,
                                                              stop_at_eos=False)[0])
        return out

    monkeypatch.setattr(parity, "run_upstream", fake_upstream)
    with pytest.raises(ParityError, match="differs from upstream"):
        run_parity("unused", fixture_dir, data, tmp_path / "parity.json", n_samples=1)
    return json.loads((tmp_path / "parity.json").read_text())


def test_broken_upstream_code_is_reported(tmp_path, fixture_dir):
    data = make_parquet(tmp_path / "q.parquet", n=1)
    with pytest.raises(ParityError, match="upstream nanoVLM's code failed"):
        run_parity(tmp_path / "no-such-clone", fixture_dir, data, tmp_path / "p.json", n_samples=1)
