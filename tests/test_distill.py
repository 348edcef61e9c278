"""Distillation: the loss against a hand computation, the teacher's outputs (what letter
scoring scores, priced exactly, checked against the student's examples), and recipes that
distil on the fixture checkpoint and on the toy demo-smoke model."""
import json
import math

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

import nanovlm_lite
from helpers import make_parquet
from nanovlm_lite.data.aokvqa import load_questions
from nanovlm_lite.evaluate.prompts import letter_token_ids, render
from nanovlm_lite.settings import PointSettings
from nanovlm_lite.train import recipes
from nanovlm_lite.train.data import TrainSet
from nanovlm_lite.train.distill import SoftTargets, distillation_loss, kd_loss
from nanovlm_lite.train.forward import loss_and_accuracy, target_logits
from nanovlm_lite.train.teacher import (TeacherMismatchError, TeacherOutputs, compute_teacher,
                                        teacher_forward_flops, teacher_outputs)
from nanovlm_lite.train.trainer import TrainConfig

NEG = float("-inf")


# ------------------------------------------------------------------------------- the loss
def _soft(dtype=torch.float32):
    """Row 0: a letter row over tokens 1 and 2 (0.7, 0.3), padded; row 1: an answer row,
    the teacher's top-2 of the vocabulary (tokens 0 and 3: 0.5 and 0.25 of the mass)."""
    return SoftTargets(index=torch.tensor([0, 1]), ids=torch.tensor([[1, 2, 0], [0, 3, 0]]),
                       logprobs=torch.tensor([[math.log(0.7), math.log(0.3), NEG],
                                              [math.log(0.5), math.log(0.25), NEG]], dtype=dtype),
                       full_vocab=torch.tensor([False, True]))


LOGITS = [[0.2, 1.0, -0.5, 0.3], [1.5, -1.0, 0.0, 0.5]]


def _softmax(values):
    m = max(values)
    e = [math.exp(v - m) for v in values]
    return [x / sum(e) for x in e]


def _hand_kd(T):
    """KL(p_T || q_T) per row by hand, then T^2 x their mean (distill.py's docstring)."""
    z0, z1 = LOGITS
    p0 = _softmax([math.log(0.7) / T, math.log(0.3) / T])
    q0 = _softmax([z0[1] / T, z0[2] / T])                      # letter: over the choices
    kl0 = sum(p * math.log(p / q) for p, q in zip(p0, q0))
    p1 = _softmax([math.log(0.5) / T, math.log(0.25) / T])     # top-k renormalised
    q_full = _softmax([v / T for v in z1])                      # answer: the whole vocabulary
    kl1 = sum(p * math.log(p / q) for p, q in zip(p1, [q_full[0], q_full[3]]))
    return T * T * (kl0 + kl1) / 2


@pytest.mark.parametrize("T", [1.0, 2.0, 0.5])
def test_kd_loss_matches_a_hand_computation(T):
    logits = torch.tensor(LOGITS, dtype=torch.float64)
    soft = _soft(torch.float64)
    assert kd_loss(logits, soft, T).item() == pytest.approx(_hand_kd(T), rel=1e-9)


def test_alpha_0_and_1_reduce_to_the_known_losses():
    logits = torch.tensor(LOGITS, requires_grad=True)
    labels = torch.tensor([1, 0])
    ce = torch.nn.functional.cross_entropy(logits, labels)
    kd = kd_loss(logits, _soft(), 2.0)
    assert torch.equal(distillation_loss(logits, labels, _soft(), 0.0, 2.0), ce)
    assert torch.equal(distillation_loss(logits, labels, _soft(), 1.0, 2.0), kd)
    mixed = distillation_loss(logits, labels, _soft(), 0.25, 2.0)
    assert mixed.item() == pytest.approx(0.25 * kd.item() + 0.75 * ce.item(), rel=1e-6)
    assert torch.equal(distillation_loss(logits, labels, None, 0.5, 2.0), ce)  # nothing to distil
    mixed.backward()
    assert torch.isfinite(logits.grad).all()  # the -inf padding gives no nan gradients


def test_kd_is_zero_only_when_the_student_matches():
    # a student that puts the teacher's letter distribution on the choices, and exactly the
    # renormalised top-k on the vocabulary (nothing elsewhere), has KL 0
    soft = _soft()
    logits = torch.tensor([[0.0, math.log(0.7), math.log(0.3), 5.0],
                           [math.log(2 / 3), -1e4, -1e4, math.log(1 / 3)]])
    assert kd_loss(logits, soft, 1.0).item() == pytest.approx(0.0, abs=1e-6)
    logits[1, 1] = 0.0  # mass outside the teacher's top-k costs the student
    assert kd_loss(logits, soft, 1.0).item() > 0.01


def test_training_options_are_checked():
    assert recipes.check_overrides({"alpha": 1, "temperature": 2}) == {"alpha": 1.0,
                                                                       "temperature": 2.0}
    for bad, message in [({"alpha": 1.5}, "alpha must be in \\[0, 1\\]"),
                         ({"temperature": 0}, "temperature must be > 0"),
                         ({"teacher_top_k": 0}, "teacher_top_k must be >= 1")]:
        with pytest.raises(ValueError, match=message):
            recipes.check_overrides(bad)


def test_distill_request_says_what_the_teacher_must_compute():
    assert recipes.distill_request("aokvqa-mcq") is None
    assert recipes.distill_request("aokvqa-distill") == {"objective": "letter", "top_k": None,
                                                         "teacher": None}
    assert recipes.distill_request("aokvqa-mcq", {"alpha": 0.5}) == {
        "objective": "letter", "top_k": None, "teacher": None}   # overrides can make it distil
    assert recipes.distill_request("demo-distill", {"teacher_top_k": 8}) == {
        "objective": "answer", "top_k": 8, "teacher": None}
    assert recipes.distill_request("demo-distill", {"alpha": 0.0}) is None
    ft, kd = recipes.get_recipe("demo-finetune").config, recipes.get_recipe("demo-distill").config
    assert kd.replace(alpha=0.0, temperature=1.0) == ft   # equal steps, batch, lr: only the loss


# ------------------------------------------------------------------ the teacher's outputs
@pytest.fixture(scope="module")
def fixture_engine(fixture_dir):
    return nanovlm_lite.load(str(fixture_dir))


@pytest.fixture(scope="module")
def train_parquet(tmp_path_factory):
    return make_parquet(tmp_path_factory.mktemp("data") / "train.parquet", n=5)


def test_letter_outputs_are_what_letter_scoring_scores(fixture_engine, train_parquet):
    questions = load_questions(train_parquet)
    settings = PointSettings(max_tiles=2)
    tensors, counts = teacher_outputs(fixture_engine, questions, settings, "letter")
    assert counts["n_examples"] == counts["n_rows"] == len(questions)
    assert not tensors["full_vocab"].any() and counts["topk_mass_mean"] is None
    tok = fixture_engine.tokenizer
    for i, q in enumerate(questions):
        letters = letter_token_ids(tok, len(q.choices))
        assert tensors["ids"][i, : len(letters)].tolist() == letters
        # the evaluator's own letter logits at the teacher's settings
        prompt = fixture_engine.prepare(q.image(), render("default", q.question, q.choices),
                                        settings)
        logits = fixture_engine.next_token_logits([prompt], settings)[0]
        expected = torch.log_softmax(logits[letters].float(), -1)
        assert torch.allclose(tensors["logprobs"][i, : len(letters)], expected, atol=1e-4)
        assert torch.isinf(tensors["logprobs"][i, len(letters):]).all()


def test_teacher_flops_are_what_its_forward_runs(fixture_engine, train_parquet):
    from torch.nn.attention import SDPBackend, sdpa_kernel
    questions = load_questions(train_parquet)
    settings = PointSettings(max_tiles=2, vit_blocks=1)
    for objective in ("letter", "answer"):
        data = TrainSet(questions, fixture_engine, settings, objective, cache_images=False)
        for img in (0, 3):
            picks = [(img, 0)]
            batch = data.batch(picks)
            with sdpa_kernel(SDPBackend.MATH), torch.inference_mode(), \
                    FlopCounterMode(display=False) as mode:
                target_logits(fixture_engine.model, batch, settings)
            assert mode.get_total_flops() == teacher_forward_flops(fixture_engine.cfg, settings,
                                                                   batch, picks)


def test_a_student_equal_to_its_teacher_has_no_distillation_loss(fixture_engine, train_parquet):
    questions = load_questions(train_parquet)
    settings = PointSettings()
    vocab = fixture_engine.cfg.lm_vocab_size
    for objective, top_k in (("letter", 32), ("answer+letter", vocab)):  # full rows: exact
        tensors, _ = teacher_outputs(fixture_engine, questions, settings, objective, top_k)
        teacher = TeacherOutputs(tensors, {}, "mem")
        data = TrainSet(questions, fixture_engine, settings, objective)
        teacher.check_examples(data)
        picks = data.draw(0, 0, 3, 2)
        soft = teacher.soft_targets(data, picks)
        with torch.no_grad():
            loss, _ = loss_and_accuracy(fixture_engine.model, data.batch(picks), settings, soft,
                                        alpha=1.0, temperature=2.0)
        assert soft.index.numel() > 0 and loss.item() == pytest.approx(0.0, abs=1e-4)
        # and a student at other settings (a cut) is not its teacher
        cut = PointSettings(vit_blocks=1)
        student = TrainSet(questions, fixture_engine, cut, objective)
        teacher.check_examples(student)   # the same examples: the cut changes no target
        with torch.no_grad():
            loss, _ = loss_and_accuracy(fixture_engine.model, student.batch(picks), cut,
                                        teacher.soft_targets(student, picks), 1.0, 2.0)
        assert loss.item() > 1e-4


def test_outputs_for_other_questions_are_refused(fixture_engine, train_parquet, tmp_path):
    questions = load_questions(train_parquet)
    tensors, _ = teacher_outputs(fixture_engine, questions, PointSettings(), "letter")
    teacher = TeacherOutputs(tensors, {"objective": "letter"}, tmp_path)
    other = TrainSet(questions[:4], fixture_engine, PointSettings(), "letter")
    with pytest.raises(TeacherMismatchError, match="5 training examples.*4 other ones"):
        teacher.check_examples(other)
    answer = TrainSet(questions, fixture_engine, PointSettings(), "answer")
    with pytest.raises(TeacherMismatchError):
        teacher.check_examples(answer)
    with pytest.raises(TeacherMismatchError, match="not a teacher directory"):
        TeacherOutputs.load(tmp_path)


# ----------------------------------------------------------------------------- recipes
def test_a_distilling_finetune_trains_against_its_teacher(fixture_dir, train_parquet, tmp_path):
    val = make_parquet(tmp_path / "validation.parquet", n=3)
    teacher_dir = compute_teacher(str(fixture_dir), train_parquet, {}, "letter",
                                  tmp_path / "teacher", device="cpu")
    record = json.loads((teacher_dir / "teacher.json").read_text())
    assert record["n_questions"] == 5 and record["tflops"] > 0 and record["seconds"] >= 0
    overrides = {"steps": 2, "images_per_batch": 2, "accumulate": 1, "eval_questions": 3}
    with pytest.raises(ValueError, match="distils.*needs the teacher's outputs"):
        recipes.finetune(str(fixture_dir), train_parquet, "aokvqa-distill", {"max_tiles": 2},
                         tmp_path / "no-teacher", device="cpu", overrides=overrides,
                         progress=False, val_data=val)
    out = tmp_path / "student"
    recipes.finetune(str(fixture_dir), train_parquet, "aokvqa-distill", {"max_tiles": 2}, out,
                     device="cpu", overrides=overrides, progress=False, val_data=val,
                     teacher=teacher_dir)
    trained = json.loads((out / "training.json").read_text())
    assert trained["config"]["alpha"] == 0.5 and trained["config"]["temperature"] == 2.0
    assert trained["teacher"]["tflops"] == record["tflops"]
    assert trained["teacher"]["outputs_sha256"] == record["outputs_sha256"]
    assert trained["setup"]["teacher"]["outputs_sha256"] == record["outputs_sha256"]
    # the same setup is done; another teacher is another setup, never taken as done
    recipes.finetune(str(fixture_dir), train_parquet, "aokvqa-distill", {"max_tiles": 2}, out,
                     device="cpu", overrides=overrides, progress=False, val_data=val,
                     teacher=teacher_dir)
    other = compute_teacher(str(fixture_dir), train_parquet, {"global_only": True}, "letter",
                            tmp_path / "teacher-2", device="cpu")
    with pytest.raises(recipes.TrainingOutputError, match="differs in teacher"):
        recipes.finetune(str(fixture_dir), train_parquet, "aokvqa-distill", {"max_tiles": 2},
                         out, device="cpu", overrides=overrides, progress=False, val_data=val,
                         teacher=other)


def test_demo_distill_runs_on_the_toy_demo_model(tmp_path):
    """demo-distill on any demo architecture: here the toy demo-smoke model, the answer
    objective, the teacher's top-k over its vocabulary."""
    from nanovlm_lite.data.easyvqa import build_demo_dataset
    data = tmp_path / "easyvqa"
    build_demo_dataset(data, max_train=24, max_val=8)
    base = recipes.train_demo_model(data, tmp_path / "base", recipe="demo-smoke",
                                    overrides={"steps": 2}, progress=False)
    teacher = compute_teacher(str(base), data / "train.parquet", {"scoring": "cloze"}, "answer",
                              tmp_path / "teacher", top_k=8, device="cpu")
    record = json.loads((teacher / "teacher.json").read_text())
    assert record["n_rows"] > record["n_examples"] and 0 < record["topk_mass_mean"] <= 1
    out = recipes.finetune(str(base), data / "train.parquet", "demo-distill",
                           {"scoring": "cloze", "vit_blocks": 1}, tmp_path / "student",
                           device="cpu", progress=False, teacher=teacher,
                           overrides={"steps": 3, "images_per_batch": 4, "eval_questions": 4,
                                      "teacher_top_k": 8})
    trained = json.loads((out / "training.json").read_text())
    assert trained["recipe"] == "demo-distill" and len(trained["history"]) == 3
    assert all(math.isfinite(h["loss"]) for h in trained["history"])
    assert trained["teacher"]["objective"] == "answer"
    nanovlm_lite.load(str(out))


def test_train_config_defaults_do_not_distil():
    assert not TrainConfig().distils and TrainConfig(alpha=0.1).distils
