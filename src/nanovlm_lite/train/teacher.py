"""The teacher's outputs for distillation: computed once per study and teacher settings,
on every training question, and reused by every student that distils from them.

The teacher is a model at a point's settings (the study's reference point, or one a recipe
names), run forward only on the training examples the students' objective makes
(objectives.py), in the students' order (TrainSet: by image, then question). For each
example it keeps what the loss reads (distill.py), at temperature 1:
- letter examples: the log-softmax over the question's choice letters at the position
  that predicts the letter: the distribution letter scoring takes the argmax of, exactly;
- answer / direct examples: at every target token (the answer's tokens and <|im_end|>),
  the top-k log-probs over the whole vocabulary and their token ids. k (teacher_top_k,
  32 by default) covers the whole vocabulary of a small model, and on nanoVLM's 49,218
  tokens keeps the file at ~0.5 KB per token instead of ~200 KB for a full row; the
  mass the k tokens hold is recorded (`topk_mass_mean`), so the truncation is measured.

Files, in the teacher's directory (results/{study}/teachers/{key}/):
- outputs.safetensors: `labels` + `label_offsets` (every example's target tokens, so a
  student on other questions or another tokenizer is refused), and one row per distilled
  position: `row_example`, `row_target` (which example, which of its targets), `ids`
  [rows, K], `logprobs` [rows, K] (-inf pads), `full_vocab` (answer rows: the student is
  normalised over the vocabulary; letter rows: over the choices);
- teacher.json: the settings, objective, top-k, model and data identities, the outputs'
  sha256 (a student's training.json keeps it), counts, FLOPs and seconds, code version.

The teacher's FLOPs are flops.py's prices of what ran: per image, the ViT, projector and
reduction once (its questions share them in a batch, as training does), and per example
the LM over the prompt + target tokens with the head at the target positions.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import replace
from pathlib import Path

import torch

from ..errors import UserError
from ..files import readable
from .data import TrainSet
from .distill import SoftTargets
from .forward import target_logits

OUTPUTS_NAME = "outputs.safetensors"
RECORD_NAME = "teacher.json"
FORMAT = "nanovlm-lite-teacher"


class TeacherMismatchError(UserError, ValueError):
    """No teacher outputs where a recipe distils, or outputs made for other training
    examples than the student's."""


def _autocast(device: torch.device):
    import contextlib
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _flat_examples(data: TrainSet) -> list:
    return [t for examples in data.examples for t in examples]


def example_labels(data: TrainSet) -> tuple[torch.Tensor, torch.Tensor]:
    """(labels, offsets): every example's target tokens, flat in TrainSet order."""
    examples = _flat_examples(data)
    lengths = torch.tensor([len(t.ids) for t in examples], dtype=torch.long)
    offsets = torch.zeros(len(examples) + 1, dtype=torch.long)
    offsets[1:] = torch.cumsum(lengths, 0)
    return torch.tensor([i for t in examples for i in t.ids], dtype=torch.long), offsets


def _example_rows(target, logits: torch.Tensor, top_k: int):
    """(target index, ids, logprobs, full_vocab) per distilled position of one example;
    `logits` [n_targets, vocab] float32 are the model's at its target positions."""
    if target.kind == "letter":
        ids = torch.tensor(target.choices, dtype=torch.long)
        return [(0, ids, torch.log_softmax(logits[0, ids], -1), False)]
    logprobs = torch.log_softmax(logits, -1)
    k = min(top_k, logprobs.shape[-1])
    values, ids = logprobs.topk(k, dim=-1)
    return [(t, ids[t], values[t], True) for t in range(logits.shape[0])]


def _plan_price(cfg, settings, n_tiles: int, sequence_length: int, n_targets: int) -> dict:
    """flops.price of one example's training forward: the LM over the whole row, the head
    at its `n_targets` target positions."""
    from ..flops import price
    from ..plan import make_plan
    plan = make_plan(cfg, replace(settings, scoring="letter"), n_tiles, sequence_length)
    return price(cfg, replace(plan, logit_positions=n_targets))


def teacher_forward_flops(cfg, settings, batch, picks) -> int:
    """Analytic FLOPs of `target_logits` on `batch` (= TrainSet.batch(picks)): each
    distinct image's vision side once, each row's LM and head (module docstring)."""
    distinct = list(dict.fromkeys(img for img, _ in picks))
    tiles = dict(zip(distinct, batch.tiles_per_image))
    lengths = batch.mask.sum(1).tolist()
    targets = torch.bincount(batch.label_rows, minlength=len(picks)).tolist()
    total, seen = 0, set()
    for r, (img, _) in enumerate(picks):
        row = _plan_price(cfg, settings, tiles[img], int(lengths[r]), int(targets[r]))
        if img not in seen:
            seen.add(img)
            total += row["vision"] + row["projector"] + row["reduce"]
        total += row["lm_prefill"] + row["lm_head"]
    return total


@torch.inference_mode()
def teacher_outputs(engine, questions, settings, objective: str, top_k: int = 32,
                    images_per_batch: int = 8, log=print) -> tuple[dict, dict]:
    """(tensors, counts) of the teacher's outputs on `questions` (module docstring)."""
    model = engine.model
    model.eval()
    device = next(model.parameters()).device
    data = TrainSet(questions, engine, settings, objective, cache_images=False)
    rows = []  # (example, target, ids, logprobs, full_vocab)
    flops, mass, n_mass, flat = 0, 0.0, 0, 0
    for start in range(0, data.n_images, images_per_batch):
        images = range(start, min(start + images_per_batch, data.n_images))
        picks = [(img, e) for img in images for e in range(len(data.examples[img]))]
        batch = data.batch(picks)
        with _autocast(device):
            logits = target_logits(model, batch, settings).float().cpu()
        flops += teacher_forward_flops(engine.cfg, settings, batch, picks)
        offset = 0
        for img, e in picks:
            target = data.examples[img][e]
            n = len(target.ids)
            for t, ids, logprobs, full in _example_rows(target, logits[offset:offset + n], top_k):
                rows.append((flat, t, ids, logprobs, full))
                if full:
                    mass += float(logprobs.exp().sum())
                    n_mass += 1
            offset += n
            flat += 1
        if start // images_per_batch % 50 == 0:
            log(f"teacher: {min(start + images_per_batch, data.n_images):,} of "
                f"{data.n_images:,} images")
    width = max(len(r[2]) for r in rows)
    ids = torch.zeros(len(rows), width, dtype=torch.long)
    logprobs = torch.full((len(rows), width), float("-inf"))
    for i, (_, _, row_ids, row_lp, _) in enumerate(rows):
        ids[i, : len(row_ids)] = row_ids
        logprobs[i, : len(row_lp)] = row_lp.float()
    labels, offsets = example_labels(data)
    tensors = {"labels": labels, "label_offsets": offsets,
               "row_example": torch.tensor([r[0] for r in rows], dtype=torch.long),
               "row_target": torch.tensor([r[1] for r in rows], dtype=torch.long),
               "ids": ids, "logprobs": logprobs.contiguous(),
               "full_vocab": torch.tensor([r[4] for r in rows], dtype=torch.bool)}
    counts = {"n_questions": len(questions), "n_images": data.n_images,
              "n_examples": data.n_examples, "n_rows": len(rows), "width": width,
              "flops": int(flops), "topk_mass_mean": mass / n_mass if n_mass else None}
    return tensors, counts


def _sha256(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def compute_teacher(model, data_path, settings: dict, objective: str, out_dir,
                    top_k: int = 32, device: str = "auto", threads: int = 1,
                    images_per_batch: int = 8, tokenizer: str | None = None) -> Path:
    """The pipeline's teacher job: `model` at `settings` on every question of `data_path`
    (the training split) -> out_dir/outputs.safetensors + teacher.json."""
    from safetensors.torch import save_file

    from .. import load
    from ..data.aokvqa import DatasetError, load_questions
    from ..evaluate.run import data_identity, model_identity
    from ..model.widths import check_pruned
    from ..environment import environment
    from ..provenance import code_version
    from ..settings import PointSettings
    from .objectives import OBJECTIVES
    if objective not in OBJECTIVES:
        raise ValueError(f"objective {objective!r}: expected one of {OBJECTIVES}")
    t0 = time.time()
    torch.set_num_threads(max(1, threads))
    point = PointSettings.from_dict(settings, where="teacher settings")
    questions = load_questions(data_path)
    missing = [q.question_id for q in questions if q.correct_choice_idx is None]
    if missing:
        raise DatasetError(f"{data_path}: {len(missing)} questions have no answer (first: "
                           f"{missing[:3]}); the teacher runs on the training split")
    engine = load(str(model), tokenizer=tokenizer, device=device)
    point.check_against(engine.cfg, where="teacher settings")
    check_pruned(point, engine.model_dir, where="teacher settings")
    tensors, counts = teacher_outputs(engine, questions, point, objective, top_k,
                                      images_per_batch)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = out_dir / (OUTPUTS_NAME + ".tmp")
    save_file(tensors, str(tmp), metadata={"format": FORMAT, "objective": objective})
    readable(tmp)  # safetensors writes 0600
    os.replace(tmp, out_dir / OUTPUTS_NAME)
    seconds = time.time() - t0
    record = {"format": FORMAT, "objective": objective, "top_k": top_k,
              "settings": point.to_dict(), "changed_settings": point.changed(),
              "model": str(model), "model_identity": model_identity(engine),
              "train_data": str(data_path), "train_data_identity": data_identity(data_path),
              "outputs_sha256": _sha256(out_dir / OUTPUTS_NAME)[:16],
              **counts, "tflops": counts["flops"] / 1e12,
              "tflops_per_question": counts["flops"] / 1e12 / max(1, counts["n_questions"]),
              "seconds": round(seconds, 1), "device": str(engine.device),
              "code_version": code_version(),
              "environment": environment(runtime=True, device=engine.device)}
    (out_dir / RECORD_NAME).write_text(json.dumps(record, indent=2) + "\n")
    print(f"teacher: {counts['n_examples']:,} examples ({counts['n_rows']:,} distilled "
          f"positions) of {counts['n_questions']:,} questions, {record['tflops']:.4g} TFLOPs, "
          f"{seconds:.1f} s -> {out_dir}")
    return out_dir


class TeacherOutputs:
    """A teacher directory, read for training: checks a student's examples are the ones it
    was made for, then gives each batch its soft targets."""

    def __init__(self, tensors: dict, record: dict, path: Path):
        self.tensors, self.record, self.path = tensors, record, path
        n_examples = len(tensors["label_offsets"]) - 1
        counts = torch.bincount(tensors["row_example"], minlength=n_examples)
        self.row_offsets = torch.zeros(n_examples + 1, dtype=torch.long)
        self.row_offsets[1:] = torch.cumsum(counts, 0)
        self.image_start: list[int] | None = None

    @classmethod
    def load(cls, directory) -> "TeacherOutputs":
        from safetensors.torch import load_file
        directory = Path(directory)
        for name in (OUTPUTS_NAME, RECORD_NAME):
            if not (directory / name).is_file():
                raise TeacherMismatchError(f"{directory}: no {name} (not a teacher directory; "
                                           f"the pipeline's teacher rule writes one)")
        record = json.loads((directory / RECORD_NAME).read_text())
        tensors = load_file(str(directory / OUTPUTS_NAME))
        if torch.any(tensors["row_example"][1:] < tensors["row_example"][:-1]):
            raise TeacherMismatchError(f"{directory / OUTPUTS_NAME}: rows out of example order")
        return cls(tensors, record, directory)

    @property
    def identity(self) -> dict:
        """What a student's training setup records of its teacher."""
        r = self.record
        return {"objective": r.get("objective"), "top_k": r.get("top_k"),
                "settings": r.get("changed_settings"), "model_identity": r.get("model_identity"),
                "outputs_sha256": r.get("outputs_sha256")}

    def cost(self) -> dict:
        """The teacher's cost, which every student's training.json reports as its own."""
        r = self.record
        return {"path": str(self.path), "tflops": r.get("tflops"),
                "tflops_per_question": r.get("tflops_per_question"),
                "seconds": r.get("seconds"), "device": r.get("device"),
                "n_questions": r.get("n_questions"), "topk_mass_mean": r.get("topk_mass_mean"),
                **self.identity}

    def check_examples(self, data: TrainSet) -> None:
        """The student's examples must be the teacher's, token for token."""
        labels, offsets = example_labels(data)
        theirs, their_offsets = self.tensors["labels"], self.tensors["label_offsets"]
        if len(offsets) != len(their_offsets) or not torch.equal(offsets, their_offsets) \
                or not torch.equal(labels, theirs):
            raise TeacherMismatchError(
                f"{self.path}: the teacher's outputs are for {len(their_offsets) - 1:,} training "
                f"examples ({self.record.get('objective')} objective, {self.record.get('train_data')}"
                f"), the student has {len(offsets) - 1:,} other ones (another training split, "
                f"objective or tokenizer); compute the teacher for the student's data")
        start, self.image_start = 0, []
        for examples in data.examples:
            self.image_start.append(start)
            start += len(examples)

    def soft_targets(self, data: TrainSet, picks) -> SoftTargets:
        """The teacher's rows for a batch of `picks` (TrainSet.draw), indexed into the
        batch's targets (in `picks` order, each example's target tokens in order)."""
        if self.image_start is None:
            self.check_examples(data)
        rows, index, offset = [], [], 0
        row_target = self.tensors["row_target"]
        for img, e in picks:
            flat = self.image_start[img] + e
            first, last = int(self.row_offsets[flat]), int(self.row_offsets[flat + 1])
            rows.extend(range(first, last))
            index.extend(offset + int(row_target[r]) for r in range(first, last))
            offset += len(data.examples[img][e].ids)
        rows = torch.tensor(rows, dtype=torch.long)
        return SoftTargets(torch.tensor(index, dtype=torch.long), self.tensors["ids"][rows],
                           self.tensors["logprobs"][rows], self.tensors["full_vocab"][rows])
