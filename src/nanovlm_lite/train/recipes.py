"""Training recipes: named data, and the two entry points the pipeline calls.

A recipe is a `TrainConfig` (objective, what trains, steps, batch, learning rate, ...)
plus, for from-scratch recipes, the demo architecture. A study point names a recipe in
its `finetune` setting; the trained checkpoint is an artifact of that point, trained at
the point's own settings (tiles, tile size, pooling, ...) so it learns what that point
computes.

- `train_demo_model(data_dir, out_dir, threads, recipe)`: the offline demo model from
  scratch on easy-VQA (tokenizer included), in upstream nanoVLM's format.
- `finetune(model, data_path, recipe, settings, out_dir, threads, device)`: fine-tune a
  checkpoint at a point's settings; a recipe that distils (alpha > 0) also takes the
  teacher's outputs (`teacher=DIR`, train/teacher.py), which the pipeline computes once.

Both write `out_dir/`: `config.json` + `model.safetensors` (upstream's format; LoRA merged
in), `tokenizer/` when the tokenizer is a local directory, `nanovlm_lite_sidecar.safetensors`
when something upstream has no place for was trained (a learned pooling module), and
`training.json` (the recipe, settings, loss history, validation accuracy, seconds).
"""
from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UserError
from .config import TrainConfig


@dataclass(frozen=True)
class Recipe:
    name: str
    description: str
    config: TrainConfig
    from_scratch: bool = False
    architecture: dict = field(default_factory=dict)   # demo_config overrides (from scratch)
    vocab_size: int = 512                             # tokenizer merges budget (from scratch)
    lm_init_std: float | None = None                  # LM weights' init std (from scratch;
                                                      # None: transformers' 0.02)
    settings: dict = field(default_factory=dict)      # defaults under the point's settings
    cost: str = ""                                    # measured or estimated compute
    teacher: str | None = None                        # distilling: the teacher point (None:
                                                      # the study's reference_point)


# The demo model (measured on 2 CPU cores, docs/demo.md "How the demo model was made to
# see"): on easy-VQA train with a sixth of its yes/no questions kept (the study's
# `yes_no_keep`), lr 5e-4 and the LM drawn at std 0.06, 2,000 steps reach `full`
# 0.960-0.976 over five seeds, every question type >= 0.90, and 1,600 steps lose 1.6
# points (benchmarks/README.md); 1,400 steps gave 0.898-0.934 (shape 0.84-0.94), and the
# earlier recipe (lr 1e-3, LM at 0.02, every yes/no question) never learned shape (0.42).
# Validation only at the end, to stay inside the demo's budget.
DEMO = TrainConfig(objective="answer", trainable="all", steps=2000, images_per_batch=32,
                   per_image=4, lr=5e-4, warmup=50, min_lr_ratio=0.05, weight_decay=0.01,
                   eval_every=0, eval_questions=500, eval_scoring=("cloze",), save_every=100)
DEMO_LM_INIT_STD = 0.06
# The blind baseline learns only what the question text predicts: its token accuracy stops
# rising by step 75 of 250 (make demo 2026-12-07: 0.705 over steps 75-100 and 225-250), so
# it trains for 150 steps (answering each question text with its most common training
# answer scores 0.661 on the evaluation questions; 250 steps scored 0.681, 950 steps 0.673).
DEMO_BLIND = DEMO.replace(steps=150, warmup=20)
# The demo's short fine-tune at a cut point (and, with the distilled loss, demo-distill).
DEMO_FINETUNE = DEMO.replace(steps=100, lr=3e-4, warmup=10, eval_every=0, save_every=50)

# The A-OKVQA fine-tunes, estimated from the FLOP model (not measured: no GPU here). One
# epoch = 17,056 questions; with the ViT frozen it runs forward only (1x) and the LM
# forward + backward (3x). At global_only (one 512 px tile: ViT 0.21 TFLOPs, LM ~140 tokens
# x 0.63 GFLOPs) that is ~0.48 TFLOPs a question, ~8 PFLOPs an epoch; at the full 13-tile
# setting (ViT 2.78 TFLOPs, LM ~900 tokens) ~4.5 TFLOPs a question, ~77 PFLOPs an epoch.
# One H100 in bf16 at a plausible 100-250 TFLOP/s, plus JPEG decoding and resizing:
AOKVQA_COST = ("GPU, estimated (not measured): one epoch ~0.05-0.1 GPU-hours on one H100 at "
               "global_only, ~0.1-0.25 at the full 13-tile setting; ~10 GB of GPU memory "
               "for AdamW on the 370M trainable parameters")

# Distillation from the teacher (train/distill.py): the fine-tunes above with the loss
# alpha * T^2 KL(teacher || student) at T + (1 - alpha) * the hard label. alpha 0.5, T 2:
# the usual middle of the range (Hinton et al.; Minitron distils with the KL alone). The
# demo recipe takes demo-finetune's steps, batch and learning rate, so the two compare at
# equal steps; the A-OKVQA ones take aokvqa-mcq's. The teacher is computed once per study
# (teacher rule): on A-OKVQA train at the reference point's settings (`default`, 13 tiles
# for a 640x480 photo, ~3.5 TFLOPs a question), ~60 PFLOPs of forward passes, estimated
# ~0.1-0.2 GPU-hours on one H100 in bf16 with image decoding; each student then costs
# about its aokvqa-mcq counterpart (the KL on 2-4 letter logits is free).
DISTILL = dict(alpha=0.5, temperature=2.0)
AOKVQA_MCQ = TrainConfig(objective="letter", trainable="vit-frozen", steps=533, images_per_batch=8,
                         per_image=1, accumulate=4, lr=2e-5, warmup=30, min_lr_ratio=0.1,
                         weight_decay=0.0, eval_every=100, eval_questions=300,
                         eval_scoring=("letter",), save_every=50)
DISTILL_COST = ("GPU, estimated (not measured): the teacher once per study ~0.1-0.2 GPU-hours "
                "on one H100 (A-OKVQA train at the reference point's 13-tile setting, "
                "~60 PFLOPs forward), then each student about aokvqa-mcq's time and memory")

RECIPES: dict[str, Recipe] = {r.name: r for r in [
    Recipe("demo", "the offline demo model from scratch on easy-VQA train (all parameters)",
           DEMO, from_scratch=True, lm_init_std=DEMO_LM_INIT_STD,
           cost="465-494 s on 2 CPU cores (make demo, 2026-12-07)"),
    Recipe("demo-blind", "the demo recipe on blank images for 150 steps: the no-vision "
           "baseline (it learns only the question text's prior, which 75 steps reach)",
           DEMO_BLIND, from_scratch=True, lm_init_std=DEMO_LM_INIT_STD,
           settings={"blank_images": True}, cost="68 s on 1 CPU core (make demo, 2026-12-07)"),
    Recipe("demo-smoke", "a toy-sized demo model in seconds, for pipeline tests (not accurate)",
           DEMO.replace(steps=20, images_per_batch=8, lr=1e-2, warmup=2, eval_every=0,
                        eval_questions=16, eval_scoring=("cloze",), save_every=0),
           from_scratch=True, architecture=dict(
               vit_hidden_dim=32, vit_inter_dim=64, vit_n_heads=2, vit_n_blocks=1,
               vit_patch_size=16, lm_hidden_dim=32, lm_inter_dim=64, lm_n_heads=2,
               lm_n_kv_heads=1, lm_n_blocks=2),
           cost="~2 s on 2 CPU cores"),
    Recipe("demo-learned-pool",
           "train only the learned pooling module (initialised as average pooling) of the "
           "demo model at the point's settings (pool: learned)",
           DEMO.replace(trainable="learned-pool", steps=150, lr=1e-2, warmup=10, eval_every=0,
                        save_every=50),
           settings={"pool": "learned"}, cost="30 s on 2 CPU cores"),
    Recipe("demo-finetune",
           "a short fine-tune of the whole demo model at a cheap point's settings, to win "
           "back the accuracy the cut cost",
           DEMO_FINETUNE,
           cost="32-39 s on 1 CPU core (make demo, 2026-12-07)"),
    Recipe("aokvqa-mcq",
           "fine-tune nanoVLM-460M on A-OKVQA train (17,056 questions, one epoch) with the "
           "letter objective at a cheap point's settings; ViT frozen",
           AOKVQA_MCQ, cost=AOKVQA_COST),
    Recipe("aokvqa-lora",
           "LoRA (rank 16, q/v) fine-tune of nanoVLM-460M on A-OKVQA train, letter objective, "
           "at a cheap point's settings; merged into the weights on save",
           TrainConfig(objective="letter", trainable="lora", steps=533, images_per_batch=8,
                       per_image=1, accumulate=4, lr=2e-4, warmup=30, min_lr_ratio=0.1,
                       weight_decay=0.0, lora_rank=16, lora_alpha=32, eval_every=100,
                       eval_questions=300, eval_scoring=("letter",), save_every=50),
           cost="GPU, estimated (not measured): about the time of aokvqa-mcq (the LM still runs "
                "backward), memory ~3 GB beyond the bf16 activations (the adapters are 1.6M parameters)"),
    Recipe("demo-distill",
           "demo-finetune's steps, batch and learning rate with the loss distilled from the "
           "teacher (the study's reference point): alpha 0.5, T 2, on the answer tokens",
           DEMO_FINETUNE.replace(**DISTILL),
           cost="36-40 s on 1 CPU core, plus the teacher once per study (22 s; make demo, 2026-12-07)"),
    Recipe("aokvqa-distill",
           "aokvqa-mcq (ViT frozen, letter objective, one epoch) distilled from the teacher "
           "(the study's reference point) on the choices' letter logits: alpha 0.5, T 2",
           AOKVQA_MCQ.replace(**DISTILL), cost=DISTILL_COST),
    Recipe("aokvqa-distill-all",
           "aokvqa-distill training every parameter, ViT included: for points whose ViT was "
           "pruned, which a frozen ViT could not win back",
           AOKVQA_MCQ.replace(trainable="all", **DISTILL),
           cost=DISTILL_COST.replace("aokvqa-mcq's time and memory", "aokvqa-mcq's time + "
                                     "the ViT's backward (~1.3x), memory + ~1.5 GB of AdamW "
                                     "state for the 93M ViT parameters")),
]}


def distill_request(recipe: str, overrides: dict | None = None) -> dict | None:
    """What a recipe (with the study's train_overrides) asks of a teacher: {objective,
    top_k, teacher (a point name, or None for the reference point)}, or None when it does
    not distil. The pipeline keys the teacher's outputs by it, so students asking the
    same share one computation."""
    spec = get_recipe(recipe)
    config = _with_overrides(spec, overrides)
    if not config.distils:
        return None
    top_k = None if config.objective == "letter" else config.teacher_top_k  # letter: the choices
    return {"objective": config.objective, "top_k": top_k, "teacher": spec.teacher}


def get_recipe(name: str) -> Recipe:
    if name not in RECIPES:
        raise ValueError(f"unknown training recipe {name!r}; known: {sorted(RECIPES)}")
    return RECIPES[name]


def check_overrides(overrides: dict | None) -> dict:
    """Training options over every recipe's own (the study's `train_overrides`, e.g.
    `{steps: 2}` for a smoke run), checked by TrainConfig's field types; returns them typed.
    An unknown name or a value of the wrong type is a ValueError naming it."""
    from ..fieldtypes import check_value, field_types
    if overrides is None:
        return {}
    if not isinstance(overrides, dict):
        raise ValueError(f"expected a mapping of training option -> value, got {overrides!r}")
    types = field_types(TrainConfig)
    unknown = sorted(set(overrides) - set(types))
    if unknown:
        raise ValueError(f"unknown training option(s) {', '.join(map(repr, unknown))}; known: "
                         f"{', '.join(sorted(types))}")
    checked = {}
    for name, value in overrides.items():
        try:
            checked[name] = check_value(value, types[name])
        except ValueError as e:
            raise ValueError(f"training option {name!r}: expected {e}, got {value!r}") from None
    try:
        TrainConfig().replace(**checked)
    except (TypeError, ValueError) as e:
        raise ValueError(f"training options {overrides}: {e}") from None
    return checked


def training_config(recipe: Recipe, overrides: dict | None) -> TrainConfig:
    """A recipe's training config with the study's train_overrides over it."""
    return _with_overrides(recipe, overrides)


def _with_overrides(recipe: Recipe, overrides: dict | None) -> TrainConfig:
    overrides = check_overrides(overrides)
    return recipe.config.replace(**overrides) if overrides else recipe.config


def _data_paths(data, val=None) -> tuple[Path, Path | None]:
    """(train parquet, validation parquet or None): `data` is a directory with train.parquet
    or a train parquet; the validation data is `val` when given (the study passes its
    evaluated split, e.g. validation.parquet), else a val.parquet beside the training data."""
    data = Path(data)
    if data.is_dir():
        train_path, val_path = data / "train.parquet", data / "val.parquet"
    else:
        train_path, val_path = data, data.with_name("val.parquet")
    if not train_path.exists():
        raise FileNotFoundError(f"{train_path}: no training data (give a directory with "
                                f"train.parquet, or a train parquet)")
    if val is not None:
        if not Path(val).is_file():
            raise FileNotFoundError(f"{val}: no such validation data file")
        return train_path, Path(val)
    if val_path == train_path or not val_path.exists():
        val_path = None
    return train_path, val_path


def _check_validation(recipe: str, config: TrainConfig, val_path) -> None:
    """A recipe that validates (eval_questions > 0) and has no validation data is an error,
    not a training.json that silently says `validation_questions: 0`."""
    from ..data.aokvqa import DatasetError
    if config.eval_questions > 0 and val_path is None:
        raise DatasetError(
            f"recipe {recipe!r} validates on {config.eval_questions} questions "
            f"(eval_questions) but no validation data was found: give it (the study passes "
            f"its evaluated split; `nanovlm-lite train --val FILE`, or a val.parquet beside "
            f"the training data), or set eval_questions: 0 to train without validation")


class TrainingOutputError(UserError, ValueError):
    """An output directory that already holds a model trained by another setup."""


def training_setup(recipe: str, config: TrainConfig, settings, base_model=None,
                   train_path=None, val_path=None, teacher=None) -> dict:
    """What decides the trained model: recipe, training config, point settings, the base
    checkpoint (config.json content, weights by size/mtime/header), the data files
    (content hashes) and, when distilling, the teacher's outputs (their sha256). Kept in
    training.json, so a finished directory is only ever taken as done for the same setup."""
    import hashlib
    import json

    from ..evaluate.run import data_identity, weights_identity
    from ..model.checkpoint import resolve_model
    base = None
    if base_model is not None:
        config_path, weights_path = resolve_model(str(base_model))
        base = {"config_sha256": hashlib.sha256(config_path.read_bytes()).hexdigest()[:16],
                "weights": weights_identity(weights_path) if weights_path else None}
    setup = {"recipe": recipe, "config": config.to_dict(), "settings": settings.to_dict(),
             "base_model": base,
             "train_data": data_identity(train_path) if train_path else None,
             "val_data": data_identity(val_path) if val_path else None}
    if teacher is not None:
        setup["teacher"] = teacher.identity
    return json.loads(json.dumps(setup))


def _teacher(recipe: str, config: TrainConfig, teacher):
    """The teacher's outputs a distilling recipe trains against (None when it does not
    distil); a recipe that distils without them is an error naming what to give."""
    from .teacher import TeacherMismatchError, TeacherOutputs
    if not config.distils:
        return None
    if teacher is None:
        raise TeacherMismatchError(f"recipe {recipe!r} distils (alpha {config.alpha}) and needs the "
                         f"teacher's outputs: give their directory (--teacher DIR; the "
                         f"pipeline's teacher rule writes results/<study>/teachers/<key>/)")
    return TeacherOutputs.load(teacher)


def _answered(questions: list, path) -> list:
    """Training needs answers: a split without them (A-OKVQA test) is refused by name."""
    from ..data.aokvqa import DatasetError
    missing = [q.question_id for q in questions if q.correct_choice_idx is None]
    if missing:
        raise DatasetError(f"{path}: {len(missing)} of {len(questions)} questions have no answer "
                           f"(correct_choice_idx null; first: {missing[:3]}); a split without "
                           f"answers can be evaluated, not trained or validated on")
    return questions


def _finished(out_dir: Path, setup: dict) -> bool:
    """True when `out_dir` holds a model trained by this very setup; a TrainingOutputError
    when it holds one trained by another (never taken as done, never silently replaced)."""
    import json
    record_path = out_dir / "training.json"
    if not (record_path.exists() and (out_dir / "model.safetensors").exists()):
        return False
    try:
        record = json.loads(record_path.read_text())
    except (OSError, json.JSONDecodeError):
        record = {}
    recorded = record.get("setup")
    if recorded is None:  # written before training.json kept its setup: compare what it has
        recorded = {"recipe": record.get("recipe"), "config": record.get("config")}
        setup = {k: setup[k] for k in recorded}
    diff = sorted(k for k in set(setup) | set(recorded) if setup.get(k) != recorded.get(k))
    if not diff:
        return True
    raise TrainingOutputError(
        f"{out_dir}: already holds a model trained by another setup (recipe "
        f"{record.get('recipe')!r}; differs in {', '.join(diff)}); train into another "
        f"directory, delete it, or train over it without --resume")


def save_trained(engine, out_dir, record: dict) -> Path:
    """The checkpoint in upstream's format + sidecar + training.json; drops the resume state."""
    from ..environment import environment
    from ..model.checkpoint import save_upstream_checkpoint
    from ..sidecar import save_sidecar
    from .state import STATE_NAME
    from .trainable import merge_lora
    from .trainer import write_training_record
    out_dir = Path(out_dir)
    record["environment"] = environment(runtime=True, device=engine.device)
    record["lora_layers_merged"] = merge_lora(engine.model)
    save_upstream_checkpoint(engine.model, out_dir)
    sidecar = save_sidecar(engine.model, out_dir)
    record["sidecar"] = sidecar.name if sidecar else None
    write_training_record(out_dir, record)
    (out_dir / STATE_NAME).unlink(missing_ok=True)
    return out_dir


def train_demo_model(data_dir, out_dir, threads: int = 1, recipe: str = "demo",
                     overrides: dict | None = None, resume: bool = True,
                     progress: bool = True, settings: dict | None = None,
                     val_data=None, teacher=None) -> Path:
    """The demo model from scratch: tokenizer, architecture, training, checkpoint.
    `settings`: a point's settings to train at (over the recipe's own); `val_data`: the
    validation parquet (default: val.parquet beside the training data); `teacher`: the
    teacher's outputs, for a recipe that distils."""
    from ..data.aokvqa import load_questions
    from ..engine import Engine
    from ..model.load import build_model
    from ..model.prompt import build_tokenizer
    from ..settings import PointSettings
    import torch

    from .demo import TOKENIZER_DIR, build_demo_tokenizer, demo_config, init_lm
    from .trainer import train
    spec = get_recipe(recipe)
    if not spec.from_scratch:
        raise ValueError(f"recipe {recipe!r} fine-tunes a checkpoint; use finetune()")
    config = _with_overrides(spec, overrides)
    out_dir = Path(out_dir)
    settings = PointSettings.from_dict({**spec.settings, **(settings or {})})
    train_path, val_path = _data_paths(data_dir, val_data)
    teacher = _teacher(recipe, config, teacher)
    setup = training_setup(recipe, config, settings, None, train_path, val_path, teacher)
    # from scratch, the recipe's shape, tokenizer budget and initialisation decide it too
    setup["from_scratch"] = {"architecture": spec.architecture, "vocab_size": spec.vocab_size,
                             "lm_init_std": spec.lm_init_std}
    if resume and _finished(out_dir, setup):
        print(f"{out_dir}: already trained by this setup (training.json); nothing to do")
        return out_dir
    t0 = time.time()
    questions = _answered(load_questions(train_path), train_path)
    _check_validation(recipe, config, val_path)
    val = _answered(load_questions(val_path), val_path) if val_path else []
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(max(1, threads))
    base_vocab = build_demo_tokenizer(questions, out_dir, spec.vocab_size)
    cfg = demo_config(base_vocab, **spec.architecture)
    torch.manual_seed(config.seed)
    model = build_model(cfg).float()
    if spec.lm_init_std is not None:
        init_lm(model, spec.lm_init_std)
    engine = Engine(model, build_tokenizer(cfg, str(out_dir / TOKENIZER_DIR)), out_dir)
    result = train(engine, questions, settings, config, out_dir, val_questions=val,
                   threads=threads, resume=resume, progress=progress, teacher=teacher)
    record = {"recipe": recipe, "description": spec.description, "config": config.to_dict(),
              "settings": settings.changed(), "setup": setup, "architecture": spec.architecture,
              "lm_init_std": spec.lm_init_std,
              "teacher": teacher.cost() if teacher else None,
              "parameters": sum(p.numel() for p in model.parameters()),
              "train_questions": len(questions), "train_seconds": round(result.seconds, 1),
              "total_seconds": round(time.time() - t0, 1), "threads": threads,
              "overrides": check_overrides(overrides),
              "validation_data": str(val_path) if val_path else None,
              "validation_questions": min(len(val), config.eval_questions),
              "validation": result.validation,
              "history": result.history}
    return save_trained(engine, out_dir, record)


def carry_beside(engine, out_dir: Path) -> None:
    """Copy what a derived checkpoint keeps from its base: the tokenizer directory beside
    it (its relative `lm_tokenizer`, or `tokenizer/`, the order the loader looks in) and a
    pruned base's pruning.json (model/widths.py: the widths are still the pruned ones)."""
    from ..model.widths import PRUNING_RECORD
    if engine.model_dir is None:
        return
    pruning = Path(engine.model_dir) / PRUNING_RECORD
    if pruning.is_file() and pruning.resolve() != (out_dir / PRUNING_RECORD).resolve():
        shutil.copyfile(pruning, out_dir / PRUNING_RECORD)
    for name in dict.fromkeys([engine.cfg.lm_tokenizer, "tokenizer"]):
        src = Path(engine.model_dir) / name
        if Path(name).is_absolute() or not src.is_dir():
            continue
        dst = out_dir / name
        if dst.resolve() != src.resolve():
            shutil.rmtree(dst, ignore_errors=True)
            shutil.copytree(src, dst)
        return


def finetune(model, data_path, recipe: str, settings: dict | None, out_dir, threads: int = 1,
             device: str = "auto", overrides: dict | None = None, resume: bool = True,
             progress: bool = True, val_data=None, teacher=None) -> Path:
    """Fine-tune checkpoint `model` with `recipe` at a point's `settings` into `out_dir`,
    validating on `val_data` (default: val.parquet beside the training data); `overrides`:
    training options over the recipe's (the study's train_overrides), kept in training.json;
    `teacher`: the teacher's outputs directory, for a recipe that distils (alpha > 0).
    A from-scratch recipe (a point naming `demo-blind`) trains a new model instead: the
    point's model is then that recipe's, not `model` fine-tuned."""
    from .. import load
    from ..data.aokvqa import load_questions
    import torch

    from ..model.widths import check_pruned
    from ..settings import PointSettings
    from .trainer import train
    spec = get_recipe(recipe)
    if spec.from_scratch:
        return train_demo_model(data_path, out_dir, threads, recipe,
                                overrides, resume, progress, settings, val_data, teacher)
    config = _with_overrides(spec, overrides)
    out_dir = Path(out_dir)
    point = PointSettings.from_dict({**spec.settings, **(settings or {})})
    train_path, val_path = _data_paths(data_path, val_data)
    teacher = _teacher(recipe, config, teacher)
    setup = training_setup(recipe, config, point, model, train_path, val_path, teacher)
    if resume and _finished(out_dir, setup):
        print(f"{out_dir}: already trained by this setup (training.json); nothing to do")
        return out_dir
    t0 = time.time()
    questions = _answered(load_questions(train_path), train_path)
    _check_validation(recipe, config, val_path)
    val = _answered(load_questions(val_path), val_path) if val_path else []
    torch.set_num_threads(max(1, threads))
    engine = load(str(model), device=device, dtype=torch.float32)
    check_pruned(point, engine.model_dir)  # a pruning point trains its pruned checkpoint
    out_dir.mkdir(parents=True, exist_ok=True)
    carry_beside(engine, out_dir)
    result = train(engine, questions, point, config, out_dir, val_questions=val,
                   threads=threads, resume=resume, progress=progress, teacher=teacher)
    record = {"recipe": recipe, "description": spec.description, "base_model": str(model),
              "config": config.to_dict(), "settings": point.changed(), "setup": setup,
              "teacher": teacher.cost() if teacher else None,
              "train_questions": len(questions), "train_seconds": round(result.seconds, 1),
              "total_seconds": round(time.time() - t0, 1), "threads": threads,
              "device": str(engine.device),
              "overrides": check_overrides(overrides),
              "validation_data": str(val_path) if val_path else None,
              "validation_questions": min(len(val), config.eval_questions),
              "validation": result.validation, "history": result.history}
    return save_trained(engine, out_dir, record)
