"""A study config's `resources:` section from the benchmark files of a finished run.

    python benchmarks/resources.py results/demo/benchmarks [--mem-margin 2] [--time-margin 3]

Snakemake's `benchmark:` files record each job's peak RSS (max_rss, MB) and wall time (s);
the section asks each rule for its worst job times a margin (memory rounded up to 100 MB,
at least 1000; time in whole minutes, at least 5), so the SLURM numbers are measured ones.
"""
import argparse
import csv
import math
from pathlib import Path


LOCAL_RULES = {"clone_upstream", "download_model", "fetch_dataset"}  # run beside snakemake


def measured(bench_dir):
    """rule -> (max peak RSS in MB, max seconds) over its jobs' benchmark files."""
    worst = {}
    for path in sorted(Path(bench_dir).rglob("*.tsv")):
        rule = path.relative_to(bench_dir).parts[0].removesuffix(".tsv")
        if rule in LOCAL_RULES:
            continue
        with open(path) as f:
            for row in csv.DictReader(f, delimiter="\t"):
                rss = float(row["max_rss"]) if row["max_rss"] not in ("", "NA", "-") else 0.0
                rss0, s0 = worst.get(rule, (0.0, 0.0))
                worst[rule] = (max(rss0, rss), max(s0, float(row["s"])))
    return worst


def section(worst, mem_margin=2.0, time_margin=3.0):
    lines = ["resources:"]
    for rule, (rss, s) in sorted(worst.items()):
        mem = max(1000, math.ceil(rss * mem_margin / 100) * 100)
        runtime = max(5, math.ceil(s * time_margin / 60))
        lines.append(f"  {rule}: {{mem_mb: {mem}, runtime: {runtime}}}  "
                     f"# measured {rss:.0f} MB, {s:.0f} s")
    return "\n".join(lines)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("bench_dir")
    ap.add_argument("--mem-margin", type=float, default=2.0)
    ap.add_argument("--time-margin", type=float, default=3.0)
    a = ap.parse_args()
    print(section(measured(a.bench_dir), a.mem_margin, a.time_margin))
