"""A markdown table of `nanovlm-lite bench --json` outputs.

    python benchmarks/summarize.py results/*.json
"""
import json
import sys
from pathlib import Path


def main(paths):
    cols = ["run", "batch", "threads", "q/s", "s/q", "latency med / p90 (s)", "seed q/s",
            "seed s/q", "speedup", "TFLOP/s", "matmul TFLOP/s", "% of matmul", "agree",
            "peak RSS (MiB)", "other load (cores)"]
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for path in paths:
        text = Path(path).read_text().strip()
        if not text:
            continue
        r = json.loads(text)
        name = Path(path).stem + (" (compiled)" if r.get("compiled") else "") + \
            ("" if r.get("malloc_tuned", True) else " (malloc untuned)")
        row = [name, r["batch_size"], r["threads"], f"{r['questions_per_second']:.3f}",
               f"{r['seconds_per_question']:.2f}",
               f"{r['latency_s']['median']:.2f} / {r['latency_s']['p90']:.2f}",
               f"{r.get('baseline_questions_per_second', float('nan')):.3f}",
               f"{r.get('baseline_seconds_per_question', float('nan')):.2f}",
               f"{r.get('speedup', float('nan')):.2f}x", f"{r['achieved_tflops']:.3f}",
               f"{r['matmul_tflops']:.3f}", f"{100 * r['fraction_of_matmul']:.1f}%",
               f"{r.get('agreeing_predictions', '-')}/{r.get('compared_predictions', '-')}",
               f"{r['peak_rss_mib']:.0f}", f"{r.get('background_load_cores') or 0:.2f}"]
        print("| " + " | ".join(str(x) for x in row) + " |")


if __name__ == "__main__":
    main(sys.argv[1:])
