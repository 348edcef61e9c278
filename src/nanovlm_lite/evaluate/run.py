"""Evaluate a set of questions at one point: batched, grouped by tile count, resumable.

Records are appended to a `.partial` JSONL as batches finish, so an interrupted run
resumes where it stopped; the finished file appears only when every question is done.
The partial's first line is the fingerprint of what determines its records (the point's
settings, the model, the prompt text, the dtype and the code that makes records), and
each record carries a hash of its question's content (text, choices, answers, image): a
rerun resumes the partial only if the fingerprint is the same, and otherwise sets it aside
as `.stale` (numbered, never overwritten), says why, and starts over; records of
questions whose content changed are set aside the same way and redone.
"""
from __future__ import annotations

import functools
import hashlib
import io
import json
import os
import sys
from pathlib import Path

import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from ..data.aokvqa import DatasetError, Question
from ..errors import UserError
from ..model.image_processing import capped_grid, tile_grid
from ..settings import PointSettings
from .direct_answer import score_direct
from .mcq import SCORERS
from .prompts import mcq_prompt_name, render, template_text
from .records import (StaleRecordsError, fingerprint_difference, read_partial,  # noqa: F401
                      read_records, set_aside, stale_name, write_records)

PACKAGE_DIR = Path(__file__).resolve().parents[1]
# the package code a record comes from, as patterns under src/nanovlm_lite/ (a directory
# means every .py under it); the evaluate rule lists the same as its code inputs
RECORD_CODE = ("model/", "evaluate/", "reduce/", "data/", "settings.py",
               "engine.py", "engine/", "lm.py", "plan*.py", "plan/", "flops*.py", "flops/",
               "sidecar.py", "__init__.py", "errors.py", "fieldtypes.py", "hub.py", "machine.py",
               "parity.py", "files.py", "upstream_env.py", "environment.py")
FINGERPRINT_FORMAT = 1


# ------------------------------------------------------------------ what made the records
def _sha256(data_or_path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    if isinstance(data_or_path, (bytes, bytearray)):
        digest.update(data_or_path)
    else:
        with open(data_or_path, "rb") as f:
            while block := f.read(chunk):
                digest.update(block)
    return digest.hexdigest()


@functools.lru_cache(maxsize=1)
def record_code_sha256() -> str:
    """A hash of the package source files that RECORD_CODE names (paths and contents)."""
    files = set()
    for pattern in RECORD_CODE:
        if pattern.endswith("/"):
            files.update(PACKAGE_DIR.joinpath(pattern).rglob("*.py"))
        else:
            files.update(PACKAGE_DIR.glob(pattern))
    digest = hashlib.sha256()
    for path in sorted(f for f in files if f.is_file() and "__pycache__" not in f.parts):
        digest.update(str(path.relative_to(PACKAGE_DIR)).encode() + b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def weights_identity(path) -> dict | None:
    """A multi-GB weights file by size, mtime and a hash of its safetensors header (tensor
    names, dtypes, shapes, offsets), not by a content hash: that would read the whole file
    again in every shard job. Training and downloads always write a new mtime, so a changed
    file never passes for the old one; a mere copy or touch restarts a shard (never mixes)."""
    path = Path(path)
    if not path.is_file():
        return None
    stat = path.stat()
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        header = f.read(min(n, 100 << 20))
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "header_sha256": _sha256(header)[:16]}


@functools.lru_cache(maxsize=8)
def _file_sha256(path: str, size: int, mtime_ns: int) -> str:
    return _sha256(path)


def data_identity(path) -> dict:
    """A dataset file by a hash of its whole content (training.json keeps it): reading
    the images once more costs little next to training on them."""
    stat = Path(path).stat()
    return {"size": stat.st_size, "sha256": _file_sha256(str(Path(path).resolve()), stat.st_size,
                                                         stat.st_mtime_ns)[:16]}


def question_sha256(q: Question) -> str:
    """A question's content (text, choices, answers, image bytes): each record carries it,
    so a resumed run redoes exactly the questions whose content changed since."""
    digest = hashlib.sha256(json.dumps([q.question_id, q.question, q.choices, q.correct_choice_idx,
                                        q.direct_answers, q.difficult_direct_answer]).encode())
    digest.update(hashlib.sha256(q.image_bytes or b"").digest())
    return digest.hexdigest()[:16]


def model_identity(engine) -> dict:
    from ..sidecar import SIDECAR_NAME
    config = json.dumps(engine.cfg.to_dict(), sort_keys=True).encode()
    identity = {"config_sha256": _sha256(config)[:16], "weights": None, "sidecar": None}
    if engine.model_dir is not None:
        identity["weights"] = weights_identity(Path(engine.model_dir) / "model.safetensors")
        identity["sidecar"] = weights_identity(Path(engine.model_dir) / SIDECAR_NAME)
    return identity


def record_fingerprint(engine, settings: PointSettings) -> dict:
    """What determines every record besides its question (JSON-ready): the settings, the
    prompt text, the model, the dtype and the code. Each record carries its question's
    content hash (question_sha256), so the dataset is checked question by question."""
    import transformers
    template = mcq_prompt_name(settings)
    prompts = {template: template_text(template)}
    if settings.direct_answer:
        prompts["da"] = template_text("da")
    fingerprint = {
        "format": FINGERPRINT_FORMAT, "settings": settings.to_dict(), "prompt": prompts,
        "model": model_identity(engine), "dtype": str(engine.dtype).replace("torch.", ""),
        "code": {"sources_sha256": record_code_sha256(), "torch": torch.__version__,
                 "transformers": transformers.__version__}}
    return json.loads(json.dumps(fingerprint))


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


def evaluate_questions(engine, questions: list[Question], settings: PointSettings,
                       batch_size: int = 8, partial_path: Path | None = None,
                       num_workers: int = 0, progress: bool = True, flops: bool = True,
                       fingerprint: dict | None = None) -> list[dict]:
    """Scores every question; with `partial_path`, appends records there and skips the
    questions it already holds, if its fingerprint is this run's (`fingerprint`, by
    default from the engine, settings and questions); a partial made otherwise is set
    aside as `.stale` and the questions start over. Returns all records in question order."""
    from ..model.widths import check_pruned
    settings.check_against(engine.cfg)
    check_pruned(settings, engine.model_dir)  # a pruning point runs on its pruned checkpoint
    done, kept = {}, []
    content = {q.question_id: question_sha256(q) for q in questions}
    if partial_path:
        partial_path = Path(partial_path)
        if fingerprint is None:
            fingerprint = record_fingerprint(engine, settings)
        if partial_path.exists():
            found, records = read_partial(partial_path)
            reason = fingerprint_difference(found, fingerprint)
            if reason:
                stale = set_aside(partial_path)
                print(f"{partial_path}: its {len(records)} records were made by {reason}; set "
                      f"aside as {stale.name}, starting over", file=sys.stderr, flush=True)
                records = []
            changed = [r for r in records if r["question_id"] in content
                       and r.get("question_sha256") != content[r["question_id"]]]
            if changed:
                stale = write_records(stale_name(partial_path), changed, found)
                print(f"{partial_path}: {len(changed)} records are of questions whose content "
                      f"(text, choices, answers or image) has changed; set aside as {stale.name}, "
                      f"redoing them", file=sys.stderr, flush=True)
            changed_ids = {id(r) for r in changed}
            kept = [r for r in records if id(r) not in changed_ids]
            done = {r["question_id"]: r for r in kept if r["question_id"] in content}
        # rewrite without a line torn by the interruption, so appended records stay readable;
        # records of questions outside this selection stay (a later, wider run reuses them)
        write_records(partial_path, kept, fingerprint)
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
                rec["question_sha256"] = content[q.question_id]
                if error is not None:
                    rec.update({"error": error, "predicted_idx": None, "correct": False})
                else:
                    rec.update(results[i])
                    rec["correct"] = (rec["predicted_idx"] is not None
                                      and rec["predicted_idx"] == q.correct_choice_idx)
                    if flops:
                        rec["flops"] = question_flops(engine.cfg, settings, rec)
                if q.correct_choice_idx is None:  # a split without answers: nothing to score
                    rec["correct"] = None
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
        from ..machine import tune_malloc
        tune_malloc()
    point.check_against(engine.cfg)
    questions = take_shard(load_questions(data_path, max_samples), shard, n_shards)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    partial = out_path.with_name(out_path.name + ".partial")
    if num_workers is None:
        num_workers = 2 if engine.device.type == "cuda" else 0
    fingerprint = record_fingerprint(engine, point)
    records = evaluate_questions(engine, questions, point, batch_size, partial,
                                 num_workers=num_workers, fingerprint=fingerprint)
    from ..environment import environment
    write_records(out_path, records, fingerprint,  # this shard's questions, in order
                  environment(runtime=True, device=engine.device))
    partial.unlink()
    return out_path
