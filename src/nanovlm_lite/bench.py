"""`nanovlm-lite bench`: how fast the batched evaluation runs, next to the seed's loop.

Batched: the point's scorer (letter scoring for most points: one prefill, the LM head at
the last position only, no decode step) over batches grouped by tile count, exactly the
path `evaluate_questions` takes. Baseline (`--baseline`): the seed's protocol on the same
questions: one question at a time, greedy generation of 10 tokens (KV cache), then letter
parsing. With `--baseline` on CPU the two are interleaved batch by batch, so a noisy
neighbour on a shared machine slows both alike; the machine's fp32 (or the run's dtype)
matmul rate is measured in the same run, before and after, as the practical ceiling.

Inputs are synthetic (or an A-OKVQA parquet, where the parser offers `--data`; `bench()`
takes any list of questions): a seeded set of images with sizes drawn from A-OKVQA val's
range (305x229 to 640x640, JPEG-encoded like the hub copy) and questions of 10-15 words
with 4 choices. Weights may be random (`--random`):
speed does not depend on them. A preset with random weights gets a stand-in tokenizer
(model/standin_tokenizer.py) because SmolLM2's cannot be fetched offline.
"""
from __future__ import annotations

import io
import json
import os
import random
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from .data.aokvqa import Question
from .machine import CpuMeter, cpu_name, matmul_tflops, peak_rss_mib, sync, tune_malloc
from .settings import PointSettings

AOKVQA_VAL_SIZES = ((305, 640), (229, 640))  # (width range, height range) in A-OKVQA val

# ------------------------------------------------------------------------ synthetic inputs
_SUBJECTS = ["the man", "the woman", "the dog", "the cat", "the child", "the player",
             "the people", "the bird", "the horse", "the boy", "the girl", "the person"]
_PLACES = ["on the left", "in the back", "near the table", "on the street", "in the water",
           "behind the fence", "beside the car", "under the umbrella", "in this room"]
_TEMPLATES = [
    "What is {s} {p} most likely doing at this time of day?",
    "Why is {s} {p} holding that object in their hand?",
    "What kind of sport is {s} {p} probably going to play next?",
    "What season of the year is it most likely in this picture?",
    "Which object {p} would {s} most likely use to stay dry?",
    "What is the color of the large vehicle parked {p} today?",
    "Where is {s} {p} likely going after this photo?",
    "What is the object that {s} {p} is sitting on made of?",
]
_CHOICES = ["frisbee", "kite", "umbrella", "surfboard", "skateboard", "bicycle", "summer",
            "winter", "red", "blue", "wood", "metal", "eating", "sleeping", "running",
            "tennis", "soccer", "baseball", "home", "work", "the beach", "the park", "a bus",
            "a train", "plastic", "reading a book", "taking a photo", "waiting for a bus"]


def _photo_like_jpeg(width: int, height: int, rng: np.random.Generator) -> bytes:
    """A smooth random image (low-frequency noise, upsampled) as JPEG, roughly the size
    and decode cost of a COCO photo of that shape."""
    from PIL import Image
    coarse = rng.integers(0, 255, (max(2, height // 32), max(2, width // 32), 3), dtype=np.uint8)
    image = Image.fromarray(coarse).resize((width, height), Image.Resampling.BICUBIC)
    grain = rng.integers(-12, 12, (height, width, 3))
    image = Image.fromarray(np.clip(np.asarray(image, dtype=np.int16) + grain, 0, 255).astype(np.uint8))
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def synthetic_questions(n: int, seed: int = 0) -> list[Question]:
    """`n` A-OKVQA-like questions: image sizes in val's range, 10-15 word questions, 4 choices."""
    rng = random.Random(seed)
    nrng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        width = rng.randint(*AOKVQA_VAL_SIZES[0])
        height = rng.randint(*AOKVQA_VAL_SIZES[1])
        text = rng.choice(_TEMPLATES).format(s=rng.choice(_SUBJECTS), p=rng.choice(_PLACES))
        out.append(Question(
            question_id=f"bench{seed}-{i}", question=text, choices=rng.sample(_CHOICES, 4),
            correct_choice_idx=rng.randrange(4), direct_answers=[], difficult_direct_answer=False,
            image_bytes=_photo_like_jpeg(width, height, nrng)))
    return out


# -------------------------------------------------------------------------- the engine
def bench_engine(model: str, device: str = "cpu", dtype=None, random_weights: bool = False,
                 tokenizer: str | None = None):
    """(engine, tokenizer note or None). With random weights and no local tokenizer, the
    stand-in tokenizer is used (never the network)."""
    from .engine import Engine, load
    if not random_weights:
        return load(model, tokenizer=tokenizer, device=device, dtype=dtype), None
    from .model.load import load_model
    from .model.prompt import build_tokenizer, resolve_tokenizer_source
    from .model.standin_tokenizer import NOTE, build_standin_tokenizer
    from .model.checkpoint import resolve_model
    vlm, model_dir = load_model(model, device=device, dtype=dtype, random_weights=True)
    config_dir = resolve_model(model)[0].parent   # a bare config.json may sit by a tokenizer/
    source = resolve_tokenizer_source(vlm.cfg, model_dir or config_dir, tokenizer)
    if tokenizer or Path(source).is_dir():
        return Engine(vlm, build_tokenizer(vlm.cfg, source), model_dir), None
    return Engine(vlm, build_standin_tokenizer(vlm.cfg), model_dir), NOTE


def bench_settings(config: str | None, point: str | None, sets: list[str]) -> PointSettings:
    from .study import point_settings
    return point_settings(config, point, sets)


# ---------------------------------------------------------------------------- measuring
def _stats(values: list[float]) -> dict:
    if not values:
        return {"median": None, "p90": None, "mean": None}
    return {"median": statistics.median(values), "p90": float(np.percentile(values, 90)),
            "mean": statistics.fmean(values)}


def analytic_flops(cfg, settings: PointSettings, record: dict) -> float:
    """A question's inference FLOPs from the FLOP model (flops.question_flops)."""
    from .flops import question_flops
    return float(question_flops(cfg, settings, record)["total"])


# ------------------------------------------------------------------------ the protocols
def _prompt_item(engine, q: Question, settings: PointSettings, template: str):
    from .evaluate.prompts import render
    text = render(template, q.question, q.choices)
    return engine.prepare(q.image(), text, settings), text


def run_batched(engine, questions, settings, batch_size, num_workers=0, on_batch=None):
    """The evaluation path (PromptDataset + batches grouped by tiles + the point's scorer).
    Yields (question indices, records, seconds) per batch; `on_batch` runs after each
    batch, outside the timed region."""
    from torch.utils.data import DataLoader

    from .evaluate.mcq import SCORERS
    from .evaluate.prompts import mcq_prompt_name
    from .evaluate.run import PromptDataset, _batches_by_tiles, _collate, question_record
    dataset = PromptDataset(engine, questions, settings, mcq_prompt_name(settings))
    loader = DataLoader(dataset, batch_sampler=_batches_by_tiles(engine, questions, settings, batch_size),
                        collate_fn=_collate, num_workers=num_workers)
    it = iter(loader)
    while True:
        t0 = time.perf_counter()
        try:
            batch = next(it)
        except StopIteration:
            return
        prompts = [item[1] for item in batch]
        scored = SCORERS[settings.scoring](engine, prompts, [questions[i].choices for i, *_ in batch],
                                           settings)
        sync(engine.device)
        seconds = time.perf_counter() - t0
        records = []
        for (i, prompt, _, text, size, error), s in zip(batch, scored):
            if error is not None:
                raise ValueError(f"question {questions[i].question_id}: {error}")
            rec = question_record(questions[i], prompt, text, size, settings)
            rec.update(s)
            records.append(rec)
        yield [item[0] for item in batch], records, seconds
        if on_batch is not None:
            on_batch([item[0] for item in batch])


def seed_settings(settings: PointSettings, max_new_tokens: int = 10) -> PointSettings:
    """The seed's protocol at a point: greedy generation of 10 tokens, then parsing."""
    return replace(settings, scoring="generate", max_new_tokens=max_new_tokens)


def run_seed_question(engine, q: Question, settings: PointSettings):
    """One question the seed's way: prepare, generate greedily (a batch of one, KV cache),
    parse a letter or choice from the text (score_generate's steps). The record also keeps
    the first step's logits at the answer letters, to check batched letter scoring against.
    Returns (record, seconds)."""
    from .evaluate.mcq import parse_answer
    from .evaluate.prompts import letter_token_ids, mcq_prompt_name
    from .evaluate.run import question_record
    t0 = time.perf_counter()
    prompt, text = _prompt_item(engine, q, settings, mcq_prompt_name(settings))
    tokens, logits = engine.generate([prompt], settings, max_new_tokens=settings.max_new_tokens,
                                     return_logits=True)
    answer = engine.tokenizer.decode(tokens[0], skip_special_tokens=True)
    idx = parse_answer(answer, q.choices)
    sync(engine.device)
    seconds = time.perf_counter() - t0
    rec = question_record(q, prompt, text, q.image().size, settings)
    rec.update(predicted_idx=idx, generated_text=answer, parsed=idx is not None,
               decode_tokens=len(tokens[0]))
    rec["first_step_letter_logits"] = logits[0][0][letter_token_ids(engine.tokenizer, len(q.choices))].tolist()
    return rec, seconds


def compile_model(engine) -> None:
    """torch.compile the pieces that hold the compute: each ViT block whole, and each LM
    block's MLP and norms (its attention updates the KV cache, which dynamo would only
    graph-break on). The Python loops around them stay eager, so settings that skip blocks
    or drop tokens keep working. Batch and sequence sizes vary: dynamic shapes."""
    for layer in engine.model.vit.encoder.layers:
        layer.compile(dynamic=True)
    for layer in engine.model.lm.model.layers:
        for part in (layer.mlp, layer.input_layernorm, layer.post_attention_layernorm):
            part.compile(dynamic=True)


def bench(engine, settings: PointSettings, questions: list[Question], batch_size: int = 8,
          baseline: bool = False, warmup: bool = True, num_workers: int | None = None,
          matmul_n: int | None = None, flops: bool = True) -> dict:
    """The measurements as a dict (see `bench_command` for the keys)."""
    device = engine.device
    if num_workers is None:  # CPU: the cores are busy with the model; CUDA: preprocess alongside
        num_workers = max(2, min(8, (os.cpu_count() or 2) // 2)) if device.type == "cuda" else 0
    interleave = baseline and num_workers == 0
    matmul_n = matmul_n or (8192 if device.type == "cuda" else 2048)
    gen_settings = seed_settings(settings)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    matmul = [matmul_tflops(device, engine.dtype, matmul_n)]
    if warmup:  # one batch and one seed question on other inputs: allocators, kernels, caches
        warm = synthetic_questions(max(batch_size, 1), seed=10_000)
        for _ in run_batched(engine, warm, settings, batch_size):
            pass
        if baseline:
            run_seed_question(engine, warm[0], gen_settings)

    base_records: dict[int, dict] = {}
    base_seconds: dict[int, float] = {}

    def run_baseline(indices):
        for i in indices:
            base_records[i], base_seconds[i] = run_seed_question(engine, questions[i], gen_settings)

    records: dict[int, dict] = {}
    batch_latency, per_question_latency, total = [], [], 0.0
    meter = CpuMeter()
    for indices, recs, seconds in run_batched(engine, questions, settings, batch_size, num_workers,
                                              on_batch=run_baseline if interleave else None):
        total += seconds
        batch_latency.append(seconds)
        for i, rec in zip(indices, recs):
            records[i] = rec
            per_question_latency.append(seconds)  # a question is answered when its batch is
    if baseline and not interleave:
        run_baseline(range(len(questions)))
    background = meter.background_cores()
    matmul.append(matmul_tflops(device, engine.dtype, matmul_n))

    n = len(questions)
    result = {
        "questions": n, "batch_size": batch_size, "scoring": settings.scoring,
        "seconds": total, "questions_per_second": n / total,
        "seconds_per_question": total / n,
        "latency_s": _stats(per_question_latency),
        "batch_latency_s": _stats(batch_latency),
        "matmul_tflops": max(matmul), "matmul_tflops_runs": matmul, "matmul_n": matmul_n,
        "interleaved": interleave, "background_load_cores": background,
        "mean_sequence_length": statistics.fmean(r["sequence_length"] for r in records.values()),
        "mean_tiles": statistics.fmean(r["n_tiles"] for r in records.values()),
    }
    if flops:
        per_q = [analytic_flops(engine.cfg, settings, records[i]) for i in range(n)]
        result.update(flops_per_question=statistics.fmean(per_q),
                      achieved_tflops=sum(per_q) / total / 1e12)
        result["fraction_of_matmul"] = result["achieved_tflops"] / result["matmul_tflops"]
    if baseline:
        base_total = sum(base_seconds.values())
        result.update({
            "baseline_seconds": base_total,
            "baseline_questions_per_second": n / base_total,
            "baseline_seconds_per_question": base_total / n,
            "baseline_latency_s": _stats(list(base_seconds.values())),
            "speedup": (n / total) / (n / base_total),
            "baseline_parsed": sum(r["predicted_idx"] is not None for r in base_records.values()),
        })
        both = [i for i in range(n) if records[i]["predicted_idx"] is not None
                and base_records[i]["predicted_idx"] is not None]
        agree = sum(records[i]["predicted_idx"] == base_records[i]["predicted_idx"] for i in both)
        result.update(compared_predictions=len(both), agreeing_predictions=agree,
                      predictions_identical=agree == len(both))
        if settings.scoring == "letter":  # the letter each protocol's first step favours
            first = [int(np.argmax(base_records[i]["first_step_letter_logits"])) for i in range(n)]
            result["first_step_letter_agreement"] = sum(
                first[i] == records[i]["predicted_idx"] for i in range(n))
            result["letter_logits_max_abs_diff"] = max(
                abs(a - b) for i in range(n) for a, b in zip(
                    records[i]["letter_logits"].values(), base_records[i]["first_step_letter_logits"]))
        if flops:
            base_flops = [analytic_flops(engine.cfg, gen_settings, base_records[i]) for i in range(n)]
            result["baseline_flops_per_question"] = statistics.fmean(base_flops)
            result["baseline_achieved_tflops"] = sum(base_flops) / base_total / 1e12
    result["predictions"] = [records[i]["predicted_idx"] for i in range(n)]
    if baseline:
        result["baseline_predictions"] = [base_records[i]["predicted_idx"] for i in range(n)]
    result["peak_rss_mib"] = peak_rss_mib()
    if device.type == "cuda":
        result["peak_gpu_memory_mib"] = torch.cuda.max_memory_allocated(device) / 2 ** 20
    return result


# ------------------------------------------------------------------------------- command
def bench_command(args) -> int:
    from .errors import InputError
    from .model.load import resolve_device
    device = resolve_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    malloc_tuned = tune_malloc() if device == "cpu" else False
    settings = bench_settings(args.config, args.point, args.set)
    data = getattr(args, "data", None)
    t0 = time.perf_counter()
    engine, tokenizer_note = bench_engine(args.model, device=device, dtype=args.dtype,
                                          random_weights=args.random,
                                          tokenizer=getattr(args, "tokenizer", None))
    load_seconds = time.perf_counter() - t0
    settings.check_against(engine.cfg)
    if args.compile:
        compile_model(engine)
    if data:
        from .data.aokvqa import load_questions
        questions = load_questions(data, args.questions)
    else:
        questions = synthetic_questions(args.questions, seed=0)
    if not questions:
        raise InputError("no questions to run (--questions must be >= 1)")
    result = bench(engine, settings, questions, args.batch_size, baseline=args.baseline)
    result = {
        "model": args.model, "random_weights": bool(args.random), "point": args.point,
        "settings": settings.changed(), "device": str(engine.device),
        "device_name": (torch.cuda.get_device_name(engine.device) if engine.device.type == "cuda"
                        else cpu_name()),
        "gpu_available": torch.cuda.is_available(), "dtype": str(engine.dtype).replace("torch.", ""),
        "threads": torch.get_num_threads(), "compiled": bool(args.compile),
        "malloc_tuned": malloc_tuned,
        "inputs": data or "synthetic (A-OKVQA val image sizes, seed 0)",
        "tokenizer": tokenizer_note or "the model's own", "load_seconds": load_seconds,
        "torch": torch.__version__, **result}
    if args.json:
        print(json.dumps(result))
    else:
        print(format_result(result))
    return 0


def format_result(r: dict) -> str:
    lines = [f"bench {r['model']} point={r['point']} {r['settings']} on {r['device']} "
             f"({r['device_name']}), {r['dtype']}, {r['threads']} threads, batch {r['batch_size']}, "
             f"{r['questions']} questions; GPU available: {r['gpu_available']}",
             f"tokenizer: {r['tokenizer']}",
             f"batched {r['scoring']}: {r['questions_per_second']:.3f} questions/s "
             f"({r['seconds_per_question']:.3f} s/question; latency median "
             f"{r['latency_s']['median']:.3f} s, p90 {r['latency_s']['p90']:.3f} s)"]
    if "achieved_tflops" in r:
        lines.append(f"achieved {r['achieved_tflops']:.4f} TFLOP/s "
                     f"({r['flops_per_question'] / 1e9:.1f} GFLOPs/question) = "
                     f"{100 * r['fraction_of_matmul']:.1f}% of the measured matmul "
                     f"{r['matmul_tflops']:.4f} TFLOP/s")
    if "baseline_questions_per_second" in r:
        lines.append(f"seed loop (1 at a time, generate 10, parse): "
                     f"{r['baseline_questions_per_second']:.3f} questions/s (latency median "
                     f"{r['baseline_latency_s']['median']:.3f} s, p90 {r['baseline_latency_s']['p90']:.3f} s)"
                     f"; speedup {r['speedup']:.2f}x")
        lines.append(f"predictions: {r['agreeing_predictions']}/{r['compared_predictions']} agree "
                     f"where both parse ({r['baseline_parsed']}/{r['questions']} generations parsed)")
        if "first_step_letter_agreement" in r:
            lines.append(f"letter favoured at the seed loop's first step = batched letter prediction: "
                         f"{r['first_step_letter_agreement']}/{r['questions']} (letter logits differ "
                         f"by at most {r['letter_logits_max_abs_diff']:.2e})")
    if r.get("background_load_cores") is not None:
        lines.append(f"other processes kept {r['background_load_cores']:.2f} cores busy meanwhile"
                     + (" (timings are pessimistic)" if r["background_load_cores"] > 0.1 else ""))
    mem = f"peak RSS {r['peak_rss_mib']:.0f} MiB" if r.get("peak_rss_mib") else "peak RSS n/a"
    if "peak_gpu_memory_mib" in r:
        mem += f", peak GPU memory {r['peak_gpu_memory_mib']:.0f} MiB"
    lines.append(mem)
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover
    from .cli import main
    sys.exit(main(["bench", *sys.argv[1:]]))
