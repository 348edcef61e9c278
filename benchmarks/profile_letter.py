"""Where the time of one batched letter-scoring step goes (torch.profiler, CPU).

    python benchmarks/profile_letter.py [--model nanovlm-460m] [--batch-size 4] [--threads 2]
Prints phase times (preprocess, ViT, projector, LM prefill, head) and the top operators.
"""
import argparse
import time

import torch

clock = time.perf_counter

from nanovlm_lite.bench import bench_engine, synthetic_questions
from nanovlm_lite.evaluate.prompts import render
from nanovlm_lite.settings import PointSettings


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", default="nanovlm-460m")
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--rows", type=int, default=25)
    p.add_argument("--no-profiler", action="store_true")
    p.add_argument("--malloc", action="store_true", help="bench.tune_malloc() first")
    p.add_argument("--compile", action="store_true", help="bench.compile_model()")
    p.add_argument("--cpu-time", action="store_true", help="process CPU time, not wall time (robust to a busy machine at 1 thread)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    global clock
    clock = time.process_time if args.cpu_time else time.perf_counter
    if args.malloc:
        from nanovlm_lite.bench import tune_malloc
        print("malloc tuned:", tune_malloc())
    settings = PointSettings(global_only=True)
    engine, _ = bench_engine(args.model, random_weights=True)
    if args.compile:
        from nanovlm_lite.bench import compile_model
        compile_model(engine)
    qs = synthetic_questions(args.batch_size, seed=1)

    def prep():
        return [engine.prepare(q.image(), render("default", q.question, q.choices), settings) for q in qs]

    def phases(prompts):
        from nanovlm_lite.lm import run_lm
        t = {}
        with torch.inference_mode():
            t0 = clock()
            pixels = torch.cat([p.image.tiles for p in prompts])
            feats = engine.model.vision_features(pixels)
            t["vit"] = clock() - t0; t0 = clock()
            tokens = engine.model.projector(feats)
            t["projector"] = clock() - t0; t0 = clock()
            ids, mask, pos = engine._batch_inputs(prompts)
            embeds = engine.model.embed(ids, tokens)
            hidden, _ = run_lm(engine.model.lm, embeds, mask, pos, settings)
            t["lm"] = clock() - t0; t0 = clock()
            engine.head(hidden[:, -1])
            t["head"] = clock() - t0
        return t

    prompts = prep()
    phases(prompts)  # warm-up
    for _ in range(args.repeats):
        t0 = clock(); prompts = prep(); tp = clock() - t0
        t = phases(prompts)
        print(f"preprocess {tp:.3f}s " + " ".join(f"{k} {v:.3f}s" for k, v in t.items()),
              f"seq {[p.sequence_length for p in prompts]}")
    if args.no_profiler:
        return
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        engine.next_token_logits(prep(), settings)
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.rows))
    print(prof.key_averages(group_by_input_shape=True).table(sort_by="self_cpu_time_total", row_limit=args.rows))


if __name__ == "__main__":
    main()
