"""The training loop: batches -> loss -> AdamW, with validation and resumable state.

One loop for every recipe: from scratch (the demo model) or fine-tuning (A-OKVQA), any
objective (objectives.py), any choice of what trains (trainable.py), at any point's
settings. Steps are optimizer steps; each is `accumulate` micro-batches of
`images_per_batch` images x up to `per_image` questions. On CUDA the forward runs under
bf16 autocast with float32 master weights. On CPU a fixed seed repeats a run bit for bit,
resumed or not, nearly always (docs/environment.md: one 2,000-step run in seven diverged).
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm import tqdm

from .config import TrainConfig  # noqa: F401 (re-exported: the loop's settings)
from .data import TrainSet
from .forward import loss_and_accuracy
from .optim import build_optimizer, build_scheduler
from .state import STATE_NAME, load_state, save_state
from .trainable import select_trainable


@dataclass
class TrainResult:
    steps: int
    seconds: float
    history: list[dict] = field(default_factory=list)
    validation: dict = field(default_factory=dict)  # scoring -> accuracy by question type


@contextlib.contextmanager
def cpu_threads(threads: int | None):
    previous = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def autocast(device: torch.device):
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def validate(model, engine, questions, settings, config: TrainConfig) -> dict:
    from .validate import accuracy_by_type, score
    out = {}
    for scoring in config.eval_scoring:
        with autocast(next(model.parameters()).device):
            records = score(model, engine, questions, settings, scoring)
        out[scoring] = accuracy_by_type(records)
    return out


def _fmt(metrics: dict) -> str:
    return "; ".join(f"{s}: " + ", ".join(f"{k} {v:.3f}" for k, v in m.items() if not k.startswith("n_"))
                     for s, m in metrics.items())


def train(engine, train_questions, settings, config: TrainConfig, out_dir, val_questions=None,
          threads: int | None = None, resume: bool = True, progress: bool = True,
          log=print, teacher=None) -> TrainResult:
    """Trains `engine.model` in place (float32 weights) and returns the history. Writes
    `trainer_state.pt` into `out_dir` every `save_every` steps and, with `resume`, picks
    up from one left there by an interrupted run of the same setup. Saving the final
    checkpoint is the caller's (recipes.py). A config that distils (alpha > 0) needs
    `teacher`: the teacher's outputs on these very questions (teacher.TeacherOutputs)."""
    model = engine.model
    device = next(model.parameters()).device
    with cpu_threads(threads if device.type == "cpu" else None):
        torch.manual_seed(config.seed)
        settings.check_against(model.cfg)
        params = select_trainable(model, config.trainable, settings, config.lora_rank,
                                  config.lora_alpha)
        if not params:
            raise ValueError(f"trainable {config.trainable!r} leaves nothing to train")
        model.train()
        data = TrainSet(train_questions, engine, settings, config.objective,
                        cache_images=_small(train_questions))
        if config.distils and teacher is None:
            raise ValueError(f"alpha {config.alpha} distils, so training needs the teacher's "
                             f"outputs (teacher.py); none were given")
        if config.distils:
            teacher.check_examples(data)  # the same questions, objective and tokens
        val = spread(list(val_questions or []), config.eval_questions)
        optimizer = build_optimizer(params, config.lr, config.weight_decay, config.betas)
        scheduler = build_scheduler(optimizer, config.warmup, config.steps, config.min_lr_ratio)
        fingerprint = {"config": {k: v for k, v in config.to_dict().items()
                                  if k not in ("eval_every", "eval_questions", "eval_scoring",
                                               "save_every")},
                       "settings": settings.to_dict(), "n_train": len(train_questions),
                       "n_params": sum(p.numel() for _, p in params)}
        if config.distils:
            fingerprint["teacher"] = teacher.identity
        start, history = 0, []
        restored = load_state(out_dir, model=model, optimizer=optimizer, scheduler=scheduler,
                              fingerprint=fingerprint) if resume else None
        if restored is not None:
            start, history = restored
            log(f"resuming from step {start} ({Path(out_dir) / STATE_NAME})")
        log(f"training {sum(p.numel() for _, p in params):,} parameters ({config.trainable}) on "
            f"{data.n_examples:,} {config.objective} examples over {data.n_images:,} images, "
            f"{config.steps} steps of {config.accumulate} x {config.images_per_batch} images x "
            f"{config.per_image}")
        t0 = time.time()
        bar = tqdm(total=config.steps, initial=start, desc="train", disable=not progress,
                   mininterval=2.0, dynamic_ncols=True)
        for step in range(start, config.steps):
            loss_sum, acc_sum = 0.0, 0.0
            for micro in range(config.accumulate):
                picks = data.draw(config.seed, step * config.accumulate + micro,
                                  config.images_per_batch, config.per_image)
                soft = teacher.soft_targets(data, picks) if config.distils else None
                with autocast(device):
                    loss, acc = loss_and_accuracy(model, data.batch(picks), settings, soft,
                                                  config.alpha, config.temperature)
                (loss / config.accumulate).backward()
                loss_sum += float(loss.detach()) / config.accumulate
                acc_sum += float(acc) / config.accumulate
            if config.grad_clip:
                torch.nn.utils.clip_grad_norm_([p for _, p in params], config.grad_clip)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            history.append({"step": step + 1, "loss": round(loss_sum, 5),
                            "token_acc": round(acc_sum, 4), "lr": scheduler.get_last_lr()[0]})
            bar.set_postfix(loss=f"{loss_sum:.3f}", acc=f"{acc_sum:.2f}")
            bar.update(1)
            done = step + 1
            if config.eval_every and val and done % config.eval_every == 0 and done < config.steps:
                metrics = validate(model, engine, val, settings, config)
                history[-1]["validation"] = metrics
                log(f"step {done}: {_fmt(metrics)}")
            if config.save_every and done % config.save_every == 0 and done < config.steps:
                save_state(out_dir, step=done, model=model, optimizer=optimizer,
                           scheduler=scheduler, history=history, fingerprint=fingerprint)
        bar.close()
        seconds = time.time() - t0
        result = TrainResult(config.steps, seconds, history)
        if val:
            result.validation = validate(model, engine, val, settings, config)
            log(f"final ({len(val)} validation questions): {_fmt(result.validation)}")
        model.eval()
        return result


def spread(items: list, n: int) -> list:
    """`n` items evenly spaced through `items` (all of them if there are fewer): datasets
    list an image's questions together, so the first n would cover only a few images."""
    if len(items) <= n:
        return items
    return [items[i * len(items) // n] for i in range(n)]


def _small(questions) -> bool:
    """Keep every processed image in memory when the images are few and small (the demo)."""
    return len(questions) <= 200_000 and all(len(q.image_bytes or b"") < 50_000
                                             for q in questions[:100])


def write_training_record(out_dir, record: dict) -> Path:
    path = Path(out_dir) / "training.json"
    path.write_text(json.dumps(record, indent=2) + "\n")
    return path
