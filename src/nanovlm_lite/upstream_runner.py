"""Runs upstream nanoVLM's own code on a few (image, text) cases; used by the parity check.

Executed as a script in its own process, with the upstream clone first on sys.path, so
nothing of ours is imported here: it only uses upstream's model, tokenizer and image
processor, the way upstream's generate.py does, and writes what it computed to an .npz.
Usage: python upstream_runner.py UPSTREAM_DIR MODEL_DIR CASES.json OUT.npz [MAX_NEW_TOKENS]
"""
import json
import os
import sys


def main(upstream_dir, model_dir, cases_path, out_path, max_new_tokens=4):
    # upstream's `models` and `data` folders (no __init__.py) must not lose to anything
    # beside this script, which Python put first on sys.path
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [upstream_dir] + [p for p in sys.path if os.path.abspath(p or ".") != here]
    try:
        import numpy as np
        import torch
        from PIL import Image
        from data.processors import get_image_processor, get_image_string, get_tokenizer
        from models.vision_language_model import VisionLanguageModel
    except ModuleNotFoundError as e:  # parity.py turns this into one line with the fix
        if (e.name or "").split(".")[0] in ("data", "models"):
            raise  # upstream's own code is not there: a broken clone, not a dependency
        version = sys.modules["torch"].__version__ if "torch" in sys.modules else "-"
        print(f"NANOVLM_LITE_UPSTREAM_IMPORT_ERROR {e.name} {version}", file=sys.stderr)
        sys.exit(3)

    torch.manual_seed(0)
    model = VisionLanguageModel.from_pretrained(model_dir).eval()
    cfg = model.cfg
    tokenizer = get_tokenizer(cfg.lm_tokenizer, cfg.vlm_extra_tokens, cfg.lm_chat_template)
    processor = get_image_processor(cfg.max_img_size, cfg.vit_img_size,
                                    getattr(cfg, "resize_to_max_side_len", False))
    results = {}
    for k, case in enumerate(json.loads(open(cases_path).read())):
        image = Image.open(case["image"]).convert("RGB")
        tiles, grid = processor(image)
        image_string = get_image_string(tokenizer, [grid], cfg.mp_image_token_length)
        messages = [{"role": "user", "content": image_string + case["text"]}]
        ids = tokenizer.apply_chat_template(messages, tokenize=True, add_generation_prompt=True,
                                            return_dict=False)
        input_ids = torch.tensor([ids])
        with torch.inference_mode():
            hidden, _ = model(input_ids, tiles)
            last = hidden[:, -1]
            logits = model.decoder.head(last) if last.shape[-1] == cfg.lm_hidden_dim else last
            tokens = model.generate(input_ids, tiles, max_new_tokens=max_new_tokens, greedy=True)
        results[f"case{k}_input_ids"] = np.array(ids)
        results[f"case{k}_grid"] = np.array(list(grid))
        results[f"case{k}_tiles"] = tiles.float().numpy()
        results[f"case{k}_logits"] = logits[0].float().numpy()
        results[f"case{k}_tokens"] = tokens[0].numpy()
    np.savez(out_path, **results)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4],
         int(sys.argv[5]) if len(sys.argv) > 5 else 4)
