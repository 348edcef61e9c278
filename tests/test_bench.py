"""`nanovlm-lite bench` on tiny models: its report, its arithmetic, its two protocols, and
the stand-in tokenizer. No timing thresholds: speed is measured in benchmarks/."""
import json
import shutil

import pytest
import torch

from nanovlm_lite.bench import (bench, bench_engine, matmul_tflops, seed_settings,
                                synthetic_questions)
from nanovlm_lite.cli import main
from nanovlm_lite.evaluate.prompts import letter_token_ids
from nanovlm_lite.model.config import PRESET_DIR, load_config
from nanovlm_lite.model.standin_tokenizer import NOTE, build_standin_tokenizer
from nanovlm_lite.settings import PointSettings

REQUIRED = ("questions_per_second", "baseline_questions_per_second", "speedup", "achieved_tflops",
            "matmul_tflops", "device", "threads", "dtype", "batch_size", "point", "questions",
            "latency_s", "baseline_latency_s", "peak_rss_mib", "gpu_available")


@pytest.fixture()
def random_model(tmp_path, fixture_dir):
    """The fixture's tiny architecture as a bare config.json (no weights) whose tokenizer is
    a hub id: --random builds it randomly initialised, with the stand-in tokenizer."""
    cfg = json.loads((fixture_dir / "config.json").read_text())
    cfg["lm_tokenizer"] = "HuggingFaceTB/SmolLM2-360M-Instruct"   # unreachable offline
    path = tmp_path / "tiny" / "config.json"
    path.parent.mkdir()
    path.write_text(json.dumps(cfg))
    return str(path)


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("NANOVLM_LITE_CACHE", str(tmp_path / "cache"))


def test_bench_json_has_the_keys_and_consistent_arithmetic(random_model, capsys):
    rc = main(["bench", "--model", random_model, "--random", "--questions", "5", "--batch-size", "2",
               "--baseline", "--threads", "1", "--json", "--set", "global_only=true"])
    assert rc == 0
    r = json.loads(capsys.readouterr().out)
    for key in REQUIRED:
        assert key in r, key
    assert r["questions"] == 5 and r["batch_size"] == 2 and r["threads"] == 1
    assert r["dtype"] == "float32" and r["device"] == "cpu" and r["random_weights"]
    assert r["tokenizer"] == NOTE
    assert r["settings"] == {"global_only": True} and r["mean_tiles"] == 1
    assert r["questions_per_second"] > 0 and r["baseline_questions_per_second"] > 0
    assert r["speedup"] == pytest.approx(r["questions_per_second"] / r["baseline_questions_per_second"])
    assert r["questions_per_second"] == pytest.approx(r["questions"] / r["seconds"])
    assert r["achieved_tflops"] == pytest.approx(
        r["flops_per_question"] * r["questions"] / r["seconds"] / 1e12)
    assert r["fraction_of_matmul"] == pytest.approx(r["achieved_tflops"] / r["matmul_tflops"])
    assert r["matmul_tflops"] == max(r["matmul_tflops_runs"]) > 0
    assert r["latency_s"]["median"] <= r["latency_s"]["p90"]
    assert r["baseline_latency_s"]["median"] > 0 and r["peak_rss_mib"] > 0
    # the seed's protocol decodes, so it costs more FLOPs per question than letter scoring
    assert r["baseline_flops_per_question"] > r["flops_per_question"]
    assert len(r["predictions"]) == len(r["baseline_predictions"]) == 5
    assert r["compared_predictions"] <= r["baseline_parsed"]
    # random weights rarely generate a parseable answer, but the letter the seed loop's
    # first step favours is the batched letter prediction (padding changes nothing)
    assert r["first_step_letter_agreement"] == 5
    assert r["letter_logits_max_abs_diff"] < 1e-3


def test_bench_text_report(random_model, capsys):
    assert main(["bench", "--model", random_model, "--random", "--questions", "2",
                 "--batch-size", "2", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert "questions/s" in out and "TFLOP/s" in out and "stand-in tokenizer" in out


def _letter_then_stop(engine):
    """Makes the model answer like a trained one: its first token is one of the answer
    letters, chosen by its hidden state (a wrapped random read-out, so that questions
    get different letters), then end of turn."""
    letters = letter_token_ids(engine.tokenizer, 4)
    eos = engine.tokenizer.eos_token_id
    prefill, head, state = engine.prefill, engine.head, {"first": False}
    readout = torch.randn(engine.cfg.lm_hidden_dim, 4, generator=torch.Generator().manual_seed(0))

    def patched_prefill(*args, **kwargs):
        state["first"] = True
        return prefill(*args, **kwargs)

    def patched_head(hidden):
        logits = head(hidden).clone()
        if state["first"]:
            logits[:, letters] += 1e4 + torch.sin(10 * hidden.float() @ readout)
            state["first"] = False
        else:
            logits[:, eos] += 1e4
        return logits

    engine.prefill, engine.head = patched_prefill, patched_head


def test_batched_and_seed_predictions_agree_where_both_parse(random_model):
    engine, note = bench_engine(random_model, random_weights=True)
    assert note == NOTE
    _letter_then_stop(engine)
    questions = synthetic_questions(6, seed=3)
    r = bench(engine, PointSettings(), questions, batch_size=4, baseline=True, matmul_n=128)
    assert r["baseline_parsed"] == r["compared_predictions"] == 6
    assert r["agreeing_predictions"] == 6 and r["predictions_identical"]
    assert r["predictions"] == r["baseline_predictions"]
    assert len(set(r["predictions"])) > 1          # the letters differ between questions


def test_disagreement_is_reported(random_model, monkeypatch):
    engine, _ = bench_engine(random_model, random_weights=True)
    _letter_then_stop(engine)
    from nanovlm_lite import bench as bench_module
    real = bench_module.run_seed_question

    def off_by_one(engine, q, settings):
        rec, seconds = real(engine, q, settings)
        rec["predicted_idx"] = (rec["predicted_idx"] + 1) % 4
        return rec, seconds
    monkeypatch.setattr(bench_module, "run_seed_question", off_by_one)
    r = bench(engine, PointSettings(), synthetic_questions(3), batch_size=2, baseline=True,
              matmul_n=128)
    assert r["compared_predictions"] == 3 and r["agreeing_predictions"] == 0
    assert not r["predictions_identical"]


def test_seed_protocol_settings():
    s = seed_settings(PointSettings(global_only=True, prompt="short"))
    assert s.scoring == "generate" and s.max_new_tokens == 10
    assert s.global_only and s.prompt == "short"


def test_synthetic_questions_are_seeded_and_aokvqa_like():
    a, b = synthetic_questions(5, seed=1), synthetic_questions(5, seed=1)
    assert [q.question for q in a] == [q.question for q in b]
    assert [q.image_bytes for q in a] == [q.image_bytes for q in b]
    for q in a:
        width, height = q.image().size
        assert 305 <= width <= 640 and 229 <= height <= 640
        assert 10 <= len(q.question.split()) <= 15
        assert len(q.choices) == len(set(q.choices)) == 4 and 0 <= q.correct_choice_idx < 4
    assert synthetic_questions(5, seed=2)[0].question_id != a[0].question_id


def test_matmul_tflops_is_positive():
    assert matmul_tflops("cpu", torch.float32, n=128, repeats=2, warmup=1) > 0


@pytest.mark.parametrize("preset", ["nanovlm-460m"])
def test_standin_tokenizer_matches_the_preset_vocabulary(preset, tmp_path):
    cfg = load_config(PRESET_DIR / f"{preset}.json")
    tok = build_standin_tokenizer(cfg, tmp_path / "cache")
    base = cfg.lm_base_vocab_size
    assert tok.standin == NOTE
    assert len(tok) == cfg.lm_vocab_size == base + cfg.extra_token_amount
    extras = list(cfg.vlm_extra_tokens.values())
    assert tok.convert_tokens_to_ids(extras) == list(range(base, base + len(extras)))
    assert tok.convert_ids_to_tokens(base - 1) != extras[0]     # the base vocabulary is full
    assert [tok.convert_tokens_to_ids(t) for t in ("<|endoftext|>", "<|im_start|>", "<|im_end|>")] == [0, 1, 2]
    assert tok.eos_token == "<|im_end|>" and tok.pad_token_id == tok.eos_token_id
    ids = letter_token_ids(tok, 10)                      # single, distinct tokens A..J
    assert all(i < base for i in ids)
    text = "What is the man on the left most likely holding?"
    assert tok.decode(tok.encode(text, add_special_tokens=False)) == text
    assert len(tok.encode(text, add_special_tokens=False)) <= 12     # whole words, not bytes
    # built once, then reused from the cache
    again = build_standin_tokenizer(cfg, tmp_path / "cache")
    assert again.get_vocab() == tok.get_vocab()


def test_standin_tokenizer_for_a_tiny_config(fixture_dir, tmp_path):
    cfg = load_config(fixture_dir / "config.json")
    tok = build_standin_tokenizer(cfg, tmp_path)
    assert tok.convert_tokens_to_ids("<|image|>") == cfg.lm_base_vocab_size
    assert len(tok) == cfg.lm_vocab_size
    chat = tok.apply_chat_template([{"role": "user", "content": "<|image|>hi"}], tokenize=True,
                                   add_generation_prompt=True, return_dict=False)
    assert chat[0] == 1 and cfg.lm_base_vocab_size in chat


def test_random_weights_with_a_local_tokenizer_use_it(fixture_dir, tmp_path):
    model = tmp_path / "m"
    model.mkdir()
    shutil.copy(fixture_dir / "config.json", model / "config.json")
    shutil.copytree(fixture_dir / "tokenizer", model / "tokenizer")
    engine, note = bench_engine(str(model / "config.json"), random_weights=True)
    assert note is None and not hasattr(engine.tokenizer, "standin")
