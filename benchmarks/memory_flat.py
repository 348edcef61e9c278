"""Does memory stay flat over many questions? RSS after every batch of the batched path.

    python benchmarks/memory_flat.py --model MODEL [--random] [--point-set global_only=true]
        [--questions 500] [--batch-size 8] [--threads 2] [--every 50] [--json OUT]

Runs the bench's batched evaluation path (PromptDataset, batches grouped by tile count,
the point's scorer) on synthetic A-OKVQA-like questions and prints the resident set size
(VmRSS) every `--every` questions. Growth = RSS at the end minus RSS after the first
tenth, and minus RSS half way (allocator pools fill during the first questions); peak = VmHWM.
Beside RSS: the number of live Python objects after a garbage collection (a leak in our
code grows it; allocator fragmentation does not) and the widest padded batch so far (a
wider batch legitimately needs more working memory).
"""
import argparse
import gc
import json
import time

import torch

from nanovlm_lite.bench import bench_engine, bench_settings, run_batched, synthetic_questions
from nanovlm_lite.machine import peak_rss_mib, rss_mib, tune_malloc


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", required=True)
    p.add_argument("--random", action="store_true")
    p.add_argument("--set", action="append", default=[])
    p.add_argument("--questions", type=int, default=500)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--every", type=int, default=50)
    p.add_argument("--no-malloc-tuning", action="store_true")
    p.add_argument("--json", default=None)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    tuned = False if args.no_malloc_tuning else tune_malloc()
    settings = bench_settings(None, None, args.set)
    engine, note = bench_engine(args.model, random_weights=args.random)
    # distinct questions in chunks, so the images (and tile counts) keep changing
    chunk = 100
    rows, done, next_report, t0, widest = [], 0, 0, time.perf_counter(), 0
    print(f"model {args.model}, settings {settings.changed()}, batch {args.batch_size}, "
          f"{args.threads} threads, malloc tuned: {tuned}; RSS at start {rss_mib():.0f} MiB", flush=True)
    while done < args.questions:
        qs = synthetic_questions(min(chunk, args.questions - done), seed=1000 + done)
        for indices, records, _ in run_batched(engine, qs, settings, args.batch_size):
            done += len(indices)
            widest = max([widest] + [r["sequence_length"] for r in records])
            if done >= next_report or done == args.questions:
                gc.collect()
                rows.append({"questions": done, "rss_mib": rss_mib(),
                             "python_objects": len(gc.get_objects()), "widest_batch": widest,
                             "seconds": time.perf_counter() - t0})
                print(f"{done:5d} questions  RSS {rows[-1]['rss_mib']:8.1f} MiB  "
                      f"objects {rows[-1]['python_objects']:8d}  widest {widest:5d}  "
                      f"{rows[-1]['seconds']:7.1f} s", flush=True)
                next_report = done + args.every
        del qs
    settle = next(r for r in rows if r["questions"] >= args.questions // 10)
    half = next(r for r in rows if r["questions"] >= args.questions // 2)
    result = {"model": args.model, "settings": settings.changed(), "questions": done,
              "batch_size": args.batch_size, "threads": args.threads, "malloc_tuned": tuned,
              "rss_after_first_tenth_mib": settle["rss_mib"], "rss_end_mib": rows[-1]["rss_mib"],
              "growth_mib": rows[-1]["rss_mib"] - settle["rss_mib"],
              "growth_second_half_mib": rows[-1]["rss_mib"] - half["rss_mib"], "peak_rss_mib": peak_rss_mib(),
              "python_objects_growth": rows[-1]["python_objects"] - settle["python_objects"],
              "min_rss_after_first_tenth_mib": min(r["rss_mib"] for r in rows if r["questions"] >= settle["questions"]),
              "max_rss_after_first_tenth_mib": max(r["rss_mib"] for r in rows if r["questions"] >= settle["questions"]),
              "series": rows}
    print(f"growth over the second half: {result['growth_second_half_mib']:+.1f} MiB; "
          f"after the first tenth: {result['growth_mib']:+.1f} MiB "
          f"(range {result['min_rss_after_first_tenth_mib']:.1f}..{result['max_rss_after_first_tenth_mib']:.1f}); "
          f"peak RSS {result['peak_rss_mib']:.0f} MiB; live Python objects "
          f"{result['python_objects_growth']:+d} after the first tenth")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
