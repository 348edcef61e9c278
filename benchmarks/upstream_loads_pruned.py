"""Upstream nanoVLM's own `from_pretrained` loads a width-pruned checkpoint and computes
our logits on it (docs/compression.md).

    python benchmarks/upstream_loads_pruned.py UPSTREAM_DIR

UPSTREAM_DIR: a checkout of huggingface/nanoVLM (the real study's clone goes to
resources/upstream/nanoVLM). The parity fixture is pruned (ViT MLP to half, LM MLP to a
quarter, a random importance), saved in upstream's format, loaded by upstream's
`VisionLanguageModel.from_pretrained`, and both models score the fixture's cases. Where
torchvision does not import beside this torch, upstream's `data.processors` (its image
processor and tokenizer helpers; the model code does not use them here) is stubbed.
"""
import json
import shutil
import sys
import tempfile
import types
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
FIXTURE = REPO / "tests" / "fixtures" / "nanovlm-upstream-tiny"


def main(upstream_dir: str) -> int:
    import nanovlm_lite
    from nanovlm_lite.model.checkpoint import save_upstream_checkpoint
    from nanovlm_lite.prune.apply import prune_model
    from nanovlm_lite.settings import PointSettings
    base = nanovlm_lite.load(str(FIXTURE))
    cfg = base.cfg
    g = torch.Generator().manual_seed(0)
    importance = {f"vit.{i}": torch.rand(cfg.vit_inter_dim, generator=g)
                  for i in range(cfg.vit_n_blocks)}
    importance.update({f"lm.{i}": torch.rand(cfg.lm_inter_dim, generator=g)
                       for i in range(cfg.lm_n_blocks)})
    settings = PointSettings(prune_vit_mlp=0.5, prune_lm_mlp=0.25)
    out = Path(tempfile.mkdtemp()) / "pruned"
    save_upstream_checkpoint(prune_model(base.model, importance, settings), out)
    shutil.copytree(FIXTURE / "tokenizer", out / "tokenizer")
    ours = nanovlm_lite.load(str(out))

    sys.path.insert(0, str(Path(upstream_dir).resolve()))
    try:
        import torchvision  # noqa: F401
    except Exception:
        package = types.ModuleType("data")
        package.__path__ = []
        stub = types.ModuleType("data.processors")
        stub.get_tokenizer = lambda *args, **kwargs: None
        sys.modules.update({"data": package, "data.processors": stub})
    from models.vision_language_model import VisionLanguageModel
    upstream = VisionLanguageModel.from_pretrained(str(out)).eval()
    upstream.tokenizer = types.SimpleNamespace(image_token_id=ours.model.image_token_id)
    worst = 0.0
    cases = json.loads((FIXTURE / "cases.json").read_text())["cases"]
    for case in cases:
        from PIL import Image
        image = Image.open(FIXTURE / case["image"]).convert("RGB")
        prompt = ours.prepare(image, case["text"], PointSettings())
        a = ours.next_token_logits([prompt], PointSettings())[0]
        with torch.inference_mode():
            hidden, _ = upstream(torch.tensor([prompt.input_ids]), prompt.image.tiles)
            b = upstream.decoder.head(hidden[:, -1])[0]
        worst = max(worst, float((a - b).abs().max()))
    print(json.dumps({"upstream_vit_inter_dim": upstream.cfg.vit_inter_dim,
                      "upstream_lm_inter_dim": upstream.cfg.lm_inter_dim,
                      "cases": len(cases), "max_abs_logit_difference": worst}))
    shutil.rmtree(out.parent, ignore_errors=True)
    return 0 if worst < 1e-4 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
