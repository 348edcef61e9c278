"""How long and how much memory counting nanovlm-460m's FLOPs takes (meta tensors).

    python benchmarks/flops_memory.py [--model nanovlm-460m] [--image-size 640x480]
                                      [--text-tokens 40] [--json]

Prints the analytic and measured totals, the seconds the measured count took, and the
process's peak resident memory (which includes importing torch and transformers).
"""
import argparse
import json
import resource
import sys
import time


def peak_rss_mib() -> float:
    # ru_maxrss is KiB on Linux, bytes on macOS
    scale = 1 / 2 ** 20 if sys.platform == "darwin" else 1 / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="nanovlm-460m")
    p.add_argument("--image-size", default="640x480")
    p.add_argument("--text-tokens", type=int, default=40)
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    from nanovlm_lite.flops_profile import _model_config, count_question
    from nanovlm_lite.settings import PointSettings
    width, height = (int(v) for v in args.image_size.split("x"))
    cfg, _ = _model_config(args.model)
    rss_before = peak_rss_mib()
    start = time.perf_counter()
    row = count_question(cfg, PointSettings(), width, height, text_tokens=args.text_tokens,
                         measure_it=True)
    seconds = time.perf_counter() - start
    out = {"model": args.model, "image_size": args.image_size, "text_tokens": args.text_tokens,
           "total": row["total"], "measured_total": row["measured_total"],
           "rel_diff": row["rel_diff"], "seconds": round(seconds, 3),
           "peak_rss_mib": round(peak_rss_mib(), 1),
           "peak_rss_growth_mib": round(peak_rss_mib() - rss_before, 1)}
    if args.json:
        print(json.dumps(out))
    else:
        for k, v in out.items():
            print(f"{k:>20}: {v}")


if __name__ == "__main__":
    main()
