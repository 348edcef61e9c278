"""Training on a tiny model and a few easy-VQA questions: the loss falls, an interrupted run
resumes to the same weights, checkpoints and sidecars round-trip through our loader, and
the demo tokenizer puts the extra tokens where upstream expects them."""
import json

import pytest
import torch
import yaml
from safetensors import safe_open

import nanovlm_lite
from nanovlm_lite.cli import main
from nanovlm_lite.data.aokvqa import load_questions
from nanovlm_lite.engine import Engine
from nanovlm_lite.evaluate.prompts import letter_token_ids
from nanovlm_lite.model.checkpoint import expected_upstream_shapes
from nanovlm_lite.model.config import VLMConfig
from nanovlm_lite.model.load import build_model
from nanovlm_lite.model.prompt import build_tokenizer
from nanovlm_lite.settings import PointSettings
from nanovlm_lite.sidecar import SIDECAR_NAME, SidecarError, attach_sidecar, save_sidecar
from nanovlm_lite.train import recipes
from nanovlm_lite.train.demo import build_demo_tokenizer, demo_config
from nanovlm_lite.train.objectives import targets
from nanovlm_lite.train.state import STATE_NAME
from nanovlm_lite.train.trainer import TrainConfig, train
from nanovlm_lite.train.validate import score

# fixture-sized: 4 image tokens per 64 px tile, 1 ViT block, 2 LM blocks, width 32
TINY = dict(vit_hidden_dim=32, vit_inter_dim=64, vit_n_heads=2, vit_n_blocks=1, vit_patch_size=16,
            lm_hidden_dim=32, lm_inter_dim=64, lm_n_heads=2, lm_n_kv_heads=1, lm_n_blocks=2)
FAST = TrainConfig(steps=12, images_per_batch=4, per_image=2, lr=1e-2, warmup=2, eval_every=0,
                   save_every=0)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    from nanovlm_lite.data.easyvqa import build_demo_dataset
    out = tmp_path_factory.mktemp("easyvqa")
    build_demo_dataset(out, max_train=48, max_val=24)
    return out


@pytest.fixture(scope="module")
def questions(data_dir):
    return load_questions(data_dir / "train.parquet")


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory, questions):
    out = tmp_path_factory.mktemp("tok")
    return out, build_demo_tokenizer(questions, out)


def tiny_engine(tokenizer_dir, seed=0, **overrides) -> Engine:
    out, base = tokenizer_dir
    cfg = demo_config(base, **{**TINY, **overrides})
    torch.manual_seed(seed)
    return Engine(build_model(cfg), build_tokenizer(cfg, str(out / "tokenizer")), out)


def params(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


# ------------------------------------------------------------------------------ tokenizer
def test_demo_tokenizer_has_the_extras_at_upstreams_ids(tokenizer_dir, questions):
    out, base = tokenizer_dir
    cfg = demo_config(base)
    tok = build_tokenizer(cfg, str(out / "tokenizer"))
    assert cfg.lm_vocab_size == base + 66 and len(tok) == cfg.lm_vocab_size
    assert tok.convert_tokens_to_ids(["<|endoftext|>", "<|im_start|>", "<|im_end|>"]) == [0, 1, 2]
    extras = list(cfg.vlm_extra_tokens.values())
    assert tok.convert_tokens_to_ids(extras) == list(range(base, base + 66))
    assert tok.eos_token == "<|im_end|>" and tok.pad_token_id == tok.eos_token_id
    assert len(set(letter_token_ids(tok, 4))) == 4        # A-D: one token each
    for answer in {a for q in questions for a in q.choices}:
        assert len(tok.encode(answer, add_special_tokens=False)) == 1, answer


def test_tokenizer_config_mirrors_the_fixture(tokenizer_dir, fixture_dir):
    out, _ = tokenizer_dir
    ours = json.loads((out / "tokenizer" / "tokenizer_config.json").read_text())
    theirs = json.loads((fixture_dir / "tokenizer" / "tokenizer_config.json").read_text())
    assert ours == theirs


# ----------------------------------------------------------------------------- objectives
def test_objectives_train_what_the_scorers_score(tokenizer_dir, questions):
    tok = tiny_engine(tokenizer_dir).tokenizer
    q = questions[0]
    settings = PointSettings()
    (answer,) = targets(q, "answer", tok, settings)
    assert answer.text == q.question.strip()           # the cloze template: the bare question
    assert answer.ids == (*tok.encode(q.answer, add_special_tokens=False), tok.eos_token_id)
    (letter,) = targets(q, "letter", tok, settings)
    assert letter.text.startswith(q.question.strip()) and "A. " in letter.text
    assert letter.ids == (letter_token_ids(tok, len(q.choices))[q.correct_choice_idx], tok.eos_token_id)
    assert len(targets(q, "answer+letter", tok, settings)) == 2
    (direct,) = targets(q, "direct", tok, settings)
    assert "single word" in direct.text


# ------------------------------------------------------------------------------- training
def test_loss_goes_down(tokenizer_dir, questions, tmp_path):
    engine = tiny_engine(tokenizer_dir)
    result = train(engine, questions, PointSettings(), FAST.replace(steps=25), tmp_path,
                   threads=2, progress=False, log=lambda *_: None)
    losses = [h["loss"] for h in result.history]
    assert len(losses) == 25
    assert sum(losses[-3:]) / 3 < 0.6 * sum(losses[:3]) / 3


def test_interrupted_run_resumes_to_the_same_weights(tokenizer_dir, questions, tmp_path, monkeypatch):
    config = FAST.replace(steps=8, save_every=3)
    settings = PointSettings()
    whole = tiny_engine(tokenizer_dir)
    train(whole, questions, settings, config, tmp_path / "whole", threads=2, progress=False,
          log=lambda *_: None)

    from nanovlm_lite.train import trainer
    real = trainer.loss_and_accuracy
    calls = {"n": 0}

    def crash_on_seventh(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 7:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    first = tiny_engine(tokenizer_dir)
    monkeypatch.setattr(trainer, "loss_and_accuracy", crash_on_seventh)
    with pytest.raises(KeyboardInterrupt):
        train(first, questions, settings, config, tmp_path / "cut", threads=2, progress=False,
              log=lambda *_: None)
    monkeypatch.setattr(trainer, "loss_and_accuracy", real)
    assert torch.load(tmp_path / "cut" / STATE_NAME, weights_only=False)["step"] == 6

    resumed = tiny_engine(tokenizer_dir)       # a fresh process: the initial weights again
    messages = []
    result = train(resumed, questions, settings, config, tmp_path / "cut", threads=2,
                   progress=False, log=messages.append)
    assert any("resuming from step 6" in m for m in messages)
    assert [h["step"] for h in result.history] == list(range(1, 9))
    a, b = params(whole.model), params(resumed.model)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_different_setup_refuses_the_saved_state(tokenizer_dir, questions, tmp_path):
    train(tiny_engine(tokenizer_dir), questions, PointSettings(), FAST.replace(steps=3, save_every=2),
          tmp_path, threads=2, progress=False, log=lambda *_: None)
    assert (tmp_path / STATE_NAME).exists()
    with pytest.raises(ValueError, match="different training setup"):
        train(tiny_engine(tokenizer_dir), questions, PointSettings(),
              FAST.replace(steps=3, save_every=2, lr=1e-3), tmp_path, threads=2, progress=False,
              log=lambda *_: None)


@pytest.mark.parametrize("mode,trains", [
    ("projector", {"projector."}), ("lm", {"lm."}),
    ("vit-frozen", {"projector.", "lm."}), ("all", {"vision.", "projector.", "lm."})])
def test_what_trains(tokenizer_dir, questions, tmp_path, mode, trains):
    engine = tiny_engine(tokenizer_dir)
    before = params(engine.model)
    train(engine, questions, PointSettings(), FAST.replace(steps=2, trainable=mode), tmp_path,
          threads=2, progress=False, log=lambda *_: None)
    after = params(engine.model)
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and {k.split(".")[0] + "." for k in changed} == trains


# ------------------------------------------------------------- checkpoints and sidecars
def _logits(engine, questions, settings=PointSettings()):
    prompts = [engine.prepare(q.image(), q.question, settings) for q in questions[:3]]
    return engine.next_token_logits(prompts, settings)


def test_saved_checkpoint_is_upstreams_format_and_loads_to_the_same_logits(
        tokenizer_dir, questions, tmp_path, fixture_dir):
    engine = tiny_engine(tokenizer_dir)
    train(engine, questions, PointSettings(), FAST.replace(steps=3), tmp_path / "state",
          threads=2, progress=False, log=lambda *_: None)
    out = recipes.save_trained(engine, tmp_path / "ckpt", {"recipe": "test"})
    import shutil
    shutil.copytree(tokenizer_dir[0] / "tokenizer", out / "tokenizer")
    with safe_open(str(out / "model.safetensors"), framework="pt") as f:
        shapes = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
        metadata = f.metadata()
    assert shapes == expected_upstream_shapes(engine.cfg)
    with safe_open(str(fixture_dir / "model.safetensors"), framework="pt") as f:
        assert metadata == f.metadata()            # the tied-weights note, as upstream writes it
    config = json.loads((out / "config.json").read_text())
    assert set(config) == set(VLMConfig().to_dict()) and config["lm_tokenizer"] == "tokenizer"
    assert not (out / SIDECAR_NAME).exists()
    loaded = nanovlm_lite.load(str(out))
    assert torch.allclose(_logits(loaded, questions), _logits(engine, questions), atol=1e-5)


def test_sidecar_round_trips_the_learned_pool(tokenizer_dir, questions, tmp_path):
    from nanovlm_lite.reduce.learned_pool import LearnedPool
    engine = tiny_engine(tokenizer_dir)
    model = engine.model
    model.learned_pool = LearnedPool(model.cfg.lm_hidden_dim, 2)
    with torch.no_grad():
        for p in model.learned_pool.parameters():
            p.normal_()
    path = save_sidecar(model, tmp_path)
    assert path.name == SIDECAR_NAME
    other = tiny_engine(tokenizer_dir)
    attach_sidecar(other.model, tmp_path)
    a, b = model.learned_pool.state_dict(), other.model.learned_pool.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    pooled = PointSettings(pool="learned", pool_factor=2)
    assert torch.allclose(_logits(other, questions, pooled), _logits(engine, questions, pooled))
    # nothing to keep: a stale sidecar goes away
    del model.learned_pool
    assert save_sidecar(model, tmp_path) is None and not path.exists()


def test_sidecar_with_an_unknown_module_is_a_clear_error(tokenizer_dir, tmp_path):
    from safetensors.torch import save_file
    save_file({"mystery.weight": torch.zeros(2)}, str(tmp_path / SIDECAR_NAME),
              metadata={"format": "nanovlm-lite-sidecar", "version": "1"})
    with pytest.raises(SidecarError, match="unknown module 'mystery'"):
        attach_sidecar(tiny_engine(tokenizer_dir).model, tmp_path)


def test_lora_merges_into_plain_weights(tokenizer_dir, questions, tmp_path):
    from nanovlm_lite.train.trainable import merge_lora
    engine = tiny_engine(tokenizer_dir)
    names = set(engine.model.state_dict())
    before = params(engine.model)
    train(engine, questions, PointSettings(), FAST.replace(steps=3, trainable="lora", lr=5e-2),
          tmp_path, threads=2, progress=False, log=lambda *_: None)
    with_adapters = _logits(engine, questions)
    assert merge_lora(engine.model) == 2 * engine.cfg.lm_n_blocks
    assert set(engine.model.state_dict()) == names
    after = params(engine.model)
    changed = {k for k in names if not torch.equal(before[k], after[k])}
    assert changed and all(".q_proj." in k or ".v_proj." in k for k in changed)
    assert torch.allclose(_logits(engine, questions), with_adapters, atol=1e-5)


# -------------------------------------------------------------------- recipes and CLI
def test_cli_trains_the_demo_model_from_scratch(data_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(recipes.RECIPES, "demo", recipes.Recipe(
        "demo", "tiny", recipes.DEMO.replace(images_per_batch=8, eval_questions=8, eval_every=2,
                                             eval_scoring=("cloze", "letter"),
                                             save_every=2),
        from_scratch=True, architecture=TINY))
    out = tmp_path / "demo"
    assert main(["train", "--recipe", "demo", "--data", str(data_dir), "--out", str(out),
                 "--steps", "4", "--threads", "2", "--no-progress"]) == 0
    record = json.loads((out / "training.json").read_text())
    assert record["recipe"] == "demo" and len(record["history"]) == 4
    assert set(record["validation"]) == {"cloze", "letter"}
    assert not (out / STATE_NAME).exists()
    engine = nanovlm_lite.load(str(out))
    assert engine.cfg.lm_tokenizer == "tokenizer" and (out / "tokenizer" / "tokenizer.json").exists()

    # a fine-tune of it: only the learned pool trains, and it lands in the sidecar
    tuned = tmp_path / "pooled"
    assert main(["train", "--recipe", "demo-learned-pool", "--model", str(out), "--data",
                 str(data_dir / "train.parquet"), "--out", str(tuned), "--steps", "2",
                 "--set", "pool=learned", "--threads", "2", "--no-progress"]) == 0
    with safe_open(str(out / "model.safetensors"), framework="pt") as a, \
            safe_open(str(tuned / "model.safetensors"), framework="pt") as b:
        assert all(torch.equal(a.get_tensor(k), b.get_tensor(k)) for k in a.keys())
    pooled = nanovlm_lite.load(str(tuned))
    assert pooled.model.learned_pool.factor == 2
    assert not torch.equal(pooled.model.learned_pool.window_logits, torch.zeros(2, 2)) or \
        pooled.model.learned_pool.excite.weight.abs().sum() > 0

    capsys.readouterr()
    assert main(["train", "--recipe", "demo", "--model", str(out), "--data", str(data_dir),
                 "--out", str(tmp_path / "x")]) == 2
    assert "drop --model" in capsys.readouterr().err
    assert main(["train", "--recipe", "nope", "--data", str(data_dir), "--out", str(tmp_path / "x")]) == 2


def test_a_point_naming_the_blind_recipe_trains_its_own_model_on_blank_images(
        data_dir, questions, tokenizer_dir, tmp_path, monkeypatch):
    """`finetune: demo-blind` on a point: a new model from scratch (not the base model
    fine-tuned), trained and validated at the point's settings plus the recipe's blank images."""
    monkeypatch.setitem(recipes.RECIPES, "demo-blind", recipes.Recipe(
        "demo-blind", "tiny", FAST.replace(steps=3, eval_questions=8, eval_scoring=("cloze",)),
        from_scratch=True, architecture=TINY, settings={"blank_images": True}))
    out = recipes.finetune(tmp_path / "no-base-model", data_dir, "demo-blind",
                           {"scoring": "cloze", "global_only": True}, tmp_path / "blind",
                           threads=2, progress=False)
    record = json.loads((out / "training.json").read_text())
    assert record["recipe"] == "demo-blind" and len(record["history"]) == 3
    assert record["settings"] == {"blank_images": True, "global_only": True, "scoring": "cloze"}
    assert "cloze" in record["validation"]
    assert nanovlm_lite.load(str(out)).cfg.lm_hidden_dim == TINY["lm_hidden_dim"]
    # what it trained on: every image blank, tiled as the real one is
    from nanovlm_lite.train.data import TrainSet
    engine = tiny_engine(tokenizer_dir)
    seen = TrainSet(questions, engine, PointSettings(), "answer").processed(0)
    blind = TrainSet(questions, engine, PointSettings(blank_images=True), "answer").processed(0)
    assert blind.tiles.shape == seen.tiles.shape and blind.tiles.abs().sum() == 0 < seen.tiles.abs().sum()


def test_validation_agrees_with_the_evaluator(tokenizer_dir, questions, tmp_path):
    from nanovlm_lite.evaluate import run
    engine = tiny_engine(tokenizer_dir)
    train(engine, questions, PointSettings(), FAST.replace(steps=5), tmp_path, threads=2,
          progress=False, log=lambda *_: None)
    engine.model.requires_grad_(False)
    qs = questions[:10]
    for scoring, key in (("cloze", "choice_scores"), ("letter", "letter_logits")):
        settings = PointSettings(scoring=scoring)
        ours = score(engine.model, engine, qs, settings, scoring)
        theirs = run.evaluate_questions(engine, qs, settings, batch_size=4, progress=False,
                                        flops=False)
        for a, b in zip(ours, theirs):
            expected = b[key] if key == "choice_scores" else list(b[key].values())
            assert torch.allclose(torch.tensor(a[key]), torch.tensor(expected), atol=1e-4)
            assert a["predicted_idx"] == b["predicted_idx"]


def test_aokvqa_recipe_fine_tunes_an_upstream_checkpoint(fixture_dir, tmp_path):
    """The real study's recipe, on the fixture checkpoint (multi-tile images, a tokenizer
    directory to carry along), at a cheap point's settings: the ViT stays as it was."""
    from helpers import make_parquet
    data = make_parquet(tmp_path / "train.parquet", n=6)
    val = make_parquet(tmp_path / "validation.parquet", n=4)  # the study's name, not val.parquet
    out = tmp_path / "tuned"
    overrides = {"steps": 2, "images_per_batch": 2, "accumulate": 2, "lr": 1e-3}
    recipes.finetune(str(fixture_dir), data, "aokvqa-mcq", {"max_tiles": 2}, out, threads=2,
                     device="cpu", overrides=overrides, progress=False, val_data=val)
    record = json.loads((out / "training.json").read_text())
    assert record["settings"] == {"max_tiles": 2} and len(record["history"]) == 2
    assert record["overrides"] == overrides and record["config"]["steps"] == 2
    assert record["validation_data"] == str(val) and record["validation_questions"] == 4
    assert "letter" in record["validation"]
    assert (out / "tokenizer" / "tokenizer.json").exists()
    with safe_open(str(fixture_dir / "model.safetensors"), framework="pt") as a, \
            safe_open(str(out / "model.safetensors"), framework="pt") as b:
        same = {k: torch.equal(a.get_tensor(k), b.get_tensor(k)) for k in a.keys()}
    assert all(v for k, v in same.items() if k.startswith("vision_encoder."))
    assert not same["MP.proj.weight"] and not same["decoder.blocks.0.attn.q_proj.weight"]
    nanovlm_lite.load(str(out))


def test_a_learned_pool_point_trains_its_pool(tokenizer_dir, questions, tmp_path):
    """At pool: learned the module is created as average pooling and trains with the rest;
    with trainable learned-pool it is the only thing that trains."""
    pooled = PointSettings(pool="learned", pool_factor=2)
    avg = PointSettings(pool="avg", pool_factor=2)
    engine = tiny_engine(tokenizer_dir)
    assert not hasattr(engine.model, "learned_pool")
    train(engine, questions, pooled, FAST.replace(steps=2), tmp_path / "all", threads=2,
          progress=False, log=lambda *_: None)
    assert engine.model.learned_pool.excite.weight.abs().sum() > 0   # no longer the avg init

    engine = tiny_engine(tokenizer_dir)
    before = params(engine.model)
    from nanovlm_lite.train.trainable import attach_learned_pool
    attach_learned_pool(engine.model, pooled)                          # starts as average pooling
    assert torch.allclose(_logits(engine, questions, pooled), _logits(engine, questions, avg), atol=1e-5)
    train(engine, questions, pooled, FAST.replace(steps=2, trainable="learned-pool"),
          tmp_path / "pool", threads=2, progress=False, log=lambda *_: None)
    after = params(engine.model)
    assert {k for k in after if k not in before or not torch.equal(before[k], after[k])} <= \
        {k for k in after if k.startswith("learned_pool.")}
    assert not torch.allclose(_logits(engine, questions, pooled), _logits(engine, questions, avg))


def test_batches_are_a_pure_function_of_the_step(tokenizer_dir, questions):
    from nanovlm_lite.train.data import TrainSet
    engine = tiny_engine(tokenizer_dir)
    data = TrainSet(questions, engine, PointSettings(), "answer")
    first = [data.draw(0, i, 3, 2) for i in range(4)]
    assert first == [TrainSet(questions, engine, PointSettings(), "answer").draw(0, i, 3, 2)
                     for i in range(4)]
    assert first != [data.draw(1, i, 3, 2) for i in range(4)]
    per_epoch = -(-data.n_images // 3)  # an epoch walks through every image once
    seen = {img for i in range(per_epoch) for img, _ in data.draw(0, i, 3, 2)}
    assert seen == set(range(data.n_images))


def test_a_recipe_that_validates_without_validation_data_is_an_error(fixture_dir, tmp_path):
    """Not a training.json saying `validation_questions: 0`: a train parquet with no
    val.parquet beside it and no validation file given stops before any training."""
    from helpers import make_parquet
    data = make_parquet(tmp_path / "train.parquet", n=4)
    with pytest.raises(ValueError, match="aokvqa-mcq.*validates on 300 questions.*no validation data"):
        recipes.finetune(str(fixture_dir), data, "aokvqa-mcq", {}, tmp_path / "tuned",
                         device="cpu", progress=False)
    assert not (tmp_path / "tuned").exists()


def test_train_overrides_are_checked_by_the_training_options_types():
    assert recipes.check_overrides({"steps": 2, "lr": 1}) == {"steps": 2, "lr": 1.0}
    assert recipes.check_overrides(None) == {}
    with pytest.raises(ValueError, match="unknown training option.*'stepz'.*known: accumulate"):
        recipes.check_overrides({"stepz": 2})
    with pytest.raises(ValueError, match="'steps': expected an integer, got True"):
        recipes.check_overrides({"steps": True})
    # PyYAML reads 1e-3 (no dot) as a string: the error says so and how to write it
    with pytest.raises(ValueError, match=r"'lr': expected a number \(YAML reads 1e-3 as text: "
                                         r"write 0.001\), got '1e-3'"):
        recipes.check_overrides(yaml.safe_load("lr: 1e-3"))
    with pytest.raises(ValueError, match="expected a mapping"):
        recipes.check_overrides([("steps", 2)])


def test_training_from_scratch_twice_gives_bit_identical_weights(data_dir, tmp_path, monkeypatch):
    """What reproduces (docs/environment.md): one machine, one lock, the same recipe from
    scratch (tokenizer, initialisation, data order, optimiser): the same bytes, every time."""
    import hashlib
    monkeypatch.setitem(recipes.RECIPES, "demo", recipes.Recipe(
        "demo", "tiny", recipes.DEMO.replace(steps=6, images_per_batch=4, eval_questions=4,
                                             eval_every=0, save_every=0),
        from_scratch=True, architecture=TINY))
    digests = []
    for run in ("a", "b"):
        out = recipes.train_demo_model(data_dir, tmp_path / run, threads=2, progress=False)
        digests.append({p.relative_to(out).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
                        for p in sorted(out.rglob("*")) if p.is_file() and p.name != "training.json"})
        record = json.loads((out / "training.json").read_text())
        assert record["environment"]["torch_threads"] == 2
    assert "model.safetensors" in digests[0] and digests[0] == digests[1]


def test_a_recipes_lm_init_std_draws_the_lm_and_only_the_lm_at_it(data_dir, tmp_path, monkeypatch):
    def trained(lm_init_std):
        monkeypatch.setitem(recipes.RECIPES, "demo", recipes.Recipe(
            "demo", "tiny", FAST.replace(steps=1, lr=1e-12, warmup=0, eval_questions=0),
            from_scratch=True, architecture=TINY, lm_init_std=lm_init_std))
        out = recipes.train_demo_model(data_dir, tmp_path / str(lm_init_std), threads=1,
                                       recipe="demo", progress=False)
        assert json.loads((out / "training.json").read_text())["lm_init_std"] == lm_init_std
        return nanovlm_lite.load(str(out)).model

    wide, default = trained(0.25), trained(None)
    for model, std in ((wide, 0.25), (default, 0.02)):
        lm_linears = [m.weight for m in model.lm.modules() if isinstance(m, torch.nn.Linear)]
        assert all(abs(w.std().item() - std) < std / 5 for w in lm_linears if w.numel() > 500)
        assert abs(model.lm.model.embed_tokens.weight.std().item() - std) < std / 5
        assert all(torch.equal(n.weight, torch.ones_like(n.weight)) for n in model.lm.modules()
                   if type(n).__name__ == "LlamaRMSNorm")
    # the ViT and projector are drawn as before (same seed), the LM's draw comes after them
    for (name, a), b in zip(wide.vision.state_dict().items(), default.vision.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-6), name
    assert torch.allclose(wide.projector.proj.weight, default.projector.proj.weight, atol=1e-6)
