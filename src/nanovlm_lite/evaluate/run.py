"""Evaluate a set of questions at one point: batched, grouped by tile count, resumable.

Records are appended to a `.partial` JSONL as batches finish, so an interrupted run
resumes where it stopped; the finished file appears only when every question is done.
"""
from __future__ import annotations

import io
import json
import os
from pathlib import Path

import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from ..data.aokvqa import DatasetError, Question
from ..model.image_processing import capped_grid, tile_grid
from ..settings import PointSettings
from .direct_answer import score_direct
from .mcq import SCORERS
from .prompts import mcq_prompt_name, render


def estimated_tiles(engine, question: Question, settings: PointSettings) -> int:
    """Tile count from the image header alone (no decoding), to group batches."""
    try:
        width, height = Image.open(io.BytesIO(question.image_bytes)).size
    except Exception:
        return 0
    rule = engine.tiling_rule(settings)
    rows, cols = capped_grid(*tile_grid(width, height, rule), rule.max_tiles)
    if rule.global_only:
        return 1
    return 1 if rows * cols == 1 else rows * cols + 1


class PromptDataset(Dataset):
    """Turns questions into prompts (image decode, tiling, tokenising) in DataLoader workers."""

    def __init__(self, engine, questions: list[Question], settings: PointSettings, template: str):
        self.engine, self.questions, self.settings, self.template = engine, questions, settings, template

    def __len__(self):
        return len(self.questions)

    def __getitem__(self, i):
        q = self.questions[i]
        choices = q.choices if self.settings.scoring != "cloze" else None
        text = render(self.template, q.question, choices)
        try:
            image = q.image()
            prompt = self.engine.prepare(image, text, self.settings)
            da_prompt = None
            if self.settings.direct_answer:
                da_prompt = self.engine.prepare(image, render("da", q.question), self.settings)
            return i, prompt, da_prompt, text, image.size, None
        except DatasetError as e:
            return i, None, None, text, None, str(e)


def _collate(items):
    return items


def _batches_by_tiles(engine, questions, settings, batch_size):
    order = sorted(range(len(questions)),
                   key=lambda i: (estimated_tiles(engine, questions[i], settings), i))
    return [order[k:k + batch_size] for k in range(0, len(order), batch_size)]


def question_record(q: Question, prompt, text, image_size, settings) -> dict:
    rec = {"question_id": q.question_id, "question": q.question, "choices": q.choices,
           "correct_choice_idx": q.correct_choice_idx, "prompt": text,
           "scoring": settings.scoring}
    if "question_type" in q.extra:
        rec["question_type"] = q.extra["question_type"]
    if prompt is not None:
        rec.update({"image_size": list(image_size), "n_tiles": prompt.n_tiles,
                    "grid": list(prompt.image.grid) if prompt.image else None,
                    "image_tokens": prompt.image_tokens,
                    "sequence_length": prompt.sequence_length})
    return rec


def read_records(path: Path) -> list[dict]:
    """Records of a (possibly interrupted) JSONL; a torn last line is dropped."""
    records = []
    if not Path(path).exists():
        return records
    for line in Path(path).read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            break
    return records


def evaluate_questions(engine, questions: list[Question], settings: PointSettings,
                       batch_size: int = 8, partial_path: Path | None = None,
                       num_workers: int = 0, progress: bool = True, flops: bool = True) -> list[dict]:
    """Scores every question; with `partial_path`, appends records there and skips the
    questions it already holds. Returns all records in question order."""
    settings.check_against(engine.cfg)
    done = {}
    if partial_path and Path(partial_path).exists():
        done = {r["question_id"]: r for r in read_records(partial_path)}
        # rewrite without a line torn by the interruption, so appended records stay readable
        tmp = Path(partial_path).with_name(Path(partial_path).name + ".tmp")
        tmp.write_text("".join(json.dumps(r) + "\n" for r in done.values()))
        os.replace(tmp, partial_path)
    todo = [q for q in questions if q.question_id not in done]
    template = mcq_prompt_name(settings)
    dataset = PromptDataset(engine, todo, settings, template)
    loader = DataLoader(dataset, batch_sampler=_batches_by_tiles(engine, todo, settings, batch_size),
                        collate_fn=_collate, num_workers=num_workers)
    if flops:
        from ..flops import question_flops
    sink = open(partial_path, "a") if partial_path else None
    bar = tqdm(total=len(questions), initial=len(done), desc=f"evaluate ({settings.scoring})",
               disable=not progress, unit="q")
    try:
        for batch in loader:
            ok = [item for item in batch if item[1] is not None]
            results = {}
            if ok:
                prompts = [item[1] for item in ok]
                choices = [todo[item[0]].choices for item in ok]
                scored = SCORERS[settings.scoring](engine, prompts, choices, settings)
                if settings.direct_answer:
                    da = score_direct(engine, [item[2] for item in ok], settings)
                    for s, d, item in zip(scored, da, ok):
                        s.update(direct_answer=d["direct_answer"], da_decode_tokens=d["decode_tokens"],
                                 da_sequence_length=item[2].sequence_length)
                results = {item[0]: s for item, s in zip(ok, scored)}
            for i, prompt, _, text, size, error in batch:
                q = todo[i]
                rec = question_record(q, prompt, text, size, settings)
                if error is not None:
                    rec.update({"error": error, "predicted_idx": None, "correct": False})
                else:
                    rec.update(results[i])
                    rec["correct"] = (rec["predicted_idx"] is not None
                                      and rec["predicted_idx"] == q.correct_choice_idx)
                    if flops:
                        rec["flops"] = question_flops(engine.cfg, settings, rec)
                done[q.question_id] = rec
                if sink:
                    sink.write(json.dumps(rec) + "\n")
            if sink:
                sink.flush()
                os.fsync(sink.fileno())
            bar.update(len(batch))
    finally:
        bar.close()
        if sink:
            sink.close()
    return [done[q.question_id] for q in questions]


def evaluate_shard(model, data_path, settings: dict, shard: int, n_shards: int, out_path,
                   max_samples: int | None = None, batch_size: int = 8, device: str = "auto",
                   threads: int = 1, prompt_template: str | None = None,
                   tokenizer: str | None = None, num_workers: int | None = None) -> Path:
    """One pipeline job: a shard of a point's questions -> a JSONL of per-question records."""
    from .. import load
    from ..data.aokvqa import load_questions, shard as take_shard
    torch.set_num_threads(max(1, threads))
    settings = dict(settings or {})
    if prompt_template and "prompt" not in settings:
        settings["prompt"] = prompt_template
    point = PointSettings.from_dict(settings)
    engine = load(str(model), tokenizer=tokenizer, device=device)
    if engine.device.type == "cpu":  # reuse freed activations instead of page-faulting fresh mmaps
        from ..bench import tune_malloc
        tune_malloc()
    point.check_against(engine.cfg)
    questions = take_shard(load_questions(data_path, max_samples), shard, n_shards)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    partial = out_path.with_name(out_path.name + ".partial")
    if num_workers is None:
        num_workers = 2 if engine.device.type == "cuda" else 0
    evaluate_questions(engine, questions, point, batch_size, partial, num_workers=num_workers)
    os.replace(partial, out_path)
    return out_path
