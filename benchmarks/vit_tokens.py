"""Does cutting the ViT's tokens save time, not only FLOPs? One 512 px tile, CPU.

    python benchmarks/vit_tokens.py [--model nanovlm-460m] [--threads 2] [--repeats 5]

Times `NanoVLM.vision_features` (embeddings, the ViT blocks, post-layernorm: the ViT phase)
on one tile at the full grid and under the ViT-internal settings, interleaved round by
round so that load on the machine hits every setting alike; prints the median per
setting, its ratio to the full ViT, the analytic FLOPs ratio, and the cosine of the ViT
output to the full one (weights are random unless --model is a checkpoint: then the
cosine is an accuracy proxy; with random ones it only shows the methods run). It also
runs the merging variant vit_merge did not take (merged once and carried through the
blocks, unmerged before the final norm), to show the choice in time and cosine.
Settings the model cannot run (a block it does not have) are skipped. The issue's bar: at half the
tokens (vit-merge-0.5) the ViT phase takes <= 0.65x the full ViT's time.
"""
import argparse
import statistics
import time

import torch

from nanovlm_lite.flops import price
from nanovlm_lite.model.load import load_model
from nanovlm_lite.plan import make_plan
from nanovlm_lite.settings import PointSettings

SETTINGS = {
    "full": PointSettings(),
    "vit-merge-0.5": PointSettings(vit_merge_ratio=0.5),
    "vit-merge-0.5-from-4": PointSettings(vit_merge_ratio=0.5, vit_merge_start=4),
    "vit-merge-0.75": PointSettings(vit_merge_ratio=0.75),
    "vit-hourglass-4-2": PointSettings(vit_hourglass_block=4, vit_hourglass_factor=2),
    "vit-hourglass-0-2": PointSettings(vit_hourglass_block=0, vit_hourglass_factor=2),
    "vit-6 (depth, for scale)": PointSettings(vit_blocks=6),
}


def carried_merge(model, tiles, ratio: float, start: int = 0):
    """The alternative vit_merge did not take (not a setting): match once at block
    `start`, carry the merged set through the later blocks (proportional attention), and
    unmerge once before the post-layernorm. Same tokens per block, one matching."""
    from nanovlm_lite.reduce.vit_merge import Merge, merged_count
    vm = model.vit
    hidden = vm.embeddings(tiles, interpolate_pos_encoding=False)
    layers = vm.encoder.layers
    for layer in layers[:start]:
        out = layer(hidden, attention_mask=None)
        hidden = out[0] if isinstance(out, tuple) else out
    m = Merge(hidden, merged_count(hidden.shape[1], ratio))
    x, bias = m.merge(hidden), m.attention_bias()
    for layer in layers[start:]:
        attn, _ = layer.self_attn(hidden_states=layer.layer_norm1(x), attention_mask=bias)
        x = x + attn
        x = x + layer.mlp(layer.layer_norm2(x))
    return vm.post_layernorm(m.unmerge(x))


ALTERNATIVES = {"vit-merge-0.5-carried (alt.)": lambda model, tiles: carried_merge(model, tiles, 0.5)}


def vision_flops(cfg, settings) -> int:
    plan = make_plan(cfg, settings, n_tiles=1, sequence_length=10_000)
    row = price(cfg, plan)
    return row["vision"] + row["reduce"]


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="nanovlm-460m", help="a preset (random weights) or checkpoint")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=5, help="timed rounds (after one warm-up)")
    p.add_argument("--only", nargs="*", help="setting names to run (default: all)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    random = args.model.startswith("nanovlm-") and "/" not in args.model
    model, _ = load_model(args.model, device="cpu", random_weights=random)
    model.requires_grad_(False)
    cfg = model.cfg
    names = args.only or [*SETTINGS, *ALTERNATIVES]
    for name in list(names):
        try:
            SETTINGS.get(name, PointSettings()).check_against(cfg)
        except ValueError as e:
            print(f"skipped {name}: {e}")
            names.remove(name)
    torch.manual_seed(0)
    tile = torch.randn(1, 3, cfg.vit_img_size, cfg.vit_img_size)
    out, times = {}, {n: [] for n in names}
    with torch.inference_mode():
        for round_ in range(args.repeats + 1):          # round 0 warms up
            for name in names:
                t0 = time.perf_counter()
                if name in ALTERNATIVES:
                    features = ALTERNATIVES[name](model, tile)
                else:
                    s = SETTINGS[name]
                    features = model.vision_features(tile, s.vit_blocks, s)
                dt = time.perf_counter() - t0
                if round_:
                    times[name].append(dt)
                out.setdefault(name, features.float())
    full_t = statistics.median(times["full"]) if "full" in times else None
    full_f = vision_flops(cfg, SETTINGS["full"])
    print(f"{args.model} ({'random weights' if random else 'checkpoint'}), one "
          f"{cfg.vit_img_size} px tile, {args.threads} threads, median of {args.repeats}")
    print(f"{'setting':<26} {'ms':>9} {'time ratio':>11} {'FLOPs ratio':>12} {'cosine':>8}")
    for name in names:
        t = statistics.median(times[name])
        ratio = f"{t / full_t:.3f}" if full_t else "-"
        same = SETTINGS.get(name, SETTINGS["vit-merge-0.5"])   # the alternative: its FLOPs
        flops = vision_flops(cfg, same) / full_f          # less 11 blocks' matching
        cos = (torch.nn.functional.cosine_similarity(out[name], out["full"], dim=-1).mean()
               if "full" in out else float("nan"))
        print(f"{name:<26} {t * 1e3:9.1f} {ratio:>11} {flops:12.3f} {float(cos):8.4f}")


if __name__ == "__main__":
    main()
