"""Bad input on the command line: one clear line naming what is wrong, exit status 2, no
traceback, and no work done first. One test per class of mistake (numbers and choices,
devices, --set values, prompt names, checkpoints and tokenizers, unwritable outputs)."""
import argparse
import json
import shutil
from pathlib import Path

import pytest
import torch

import nanovlm_lite
from nanovlm_lite import cli
from nanovlm_lite.cli import build_parser, main
from nanovlm_lite.model import load as model_load

from helpers import make_parquet, png_bytes


def run(argv, capsys):
    """(exit status, stderr) of the CLI, argparse's exits included."""
    capsys.readouterr()
    try:
        rc = main([str(a) for a in argv])
    except SystemExit as e:
        rc = e.code
    return rc, capsys.readouterr().err


def one_clear_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err
    assert len(lines) == 1, err
    return lines[0]


@pytest.fixture()
def image(tmp_path):
    path = tmp_path / "img.png"
    path.write_bytes(png_bytes(64, 48))
    return path


@pytest.fixture()
def data(tmp_path):
    return make_parquet(tmp_path / "q.parquet", n=4)


@pytest.fixture()
def no_model_load(monkeypatch):
    """Fails the test if a model is loaded: the error must come before any work."""
    def refuse(*a, **k):
        raise AssertionError("a model was loaded before the bad input was found")
    monkeypatch.setattr(nanovlm_lite, "load", refuse)
    monkeypatch.setattr(model_load, "load_model", refuse)


# ---- numbers and choices: checked when the command line is read --------------------------
def _value_options():
    parser = build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for command, sub in subparsers.choices.items():
        for action in sub._actions:
            if action.option_strings and action.nargs != 0:
                yield command, action


def test_no_numeric_option_takes_a_bare_int_or_float():
    """Every number of every subcommand has a range-checked type (a bare `type=int` would
    let --batch-size 0 through to a trace)."""
    numeric = set()
    for command, action in _value_options():
        assert action.type not in (int, float), f"{command} {action.option_strings}: bare {action.type}"
        if isinstance(action.default, (int, float)) and not isinstance(action.default, bool):
            assert action.type is not None, f"{command} {action.option_strings} has no type"
            numeric.add(command)
    assert {"generate", "evaluate", "bench", "parity", "train"} <= numeric


@pytest.mark.parametrize("argv, message", [
    (["evaluate", "--batch-size", "0"], "argument --batch-size: must be >= 1, got 0"),
    (["evaluate", "--batch-size", "-2"], "argument --batch-size: must be >= 1, got -2"),
    (["evaluate", "--batch-size", "abc"], "argument --batch-size: expected an integer >= 1, got 'abc'"),
    (["evaluate", "--threads", "-1"], "argument --threads: must be >= 1, got -1"),
    (["evaluate", "--max-samples", "0"], "0 selects no questions"),
    (["evaluate", "--mode", "vqa"], "argument --mode: invalid choice: 'vqa'"),
    (["generate", "--max-new-tokens", "0"], "argument --max-new-tokens: must be >= 1, got 0"),
    (["flops", "--image-size", "0x480"], "expected WxH with both sides >= 1"),
    (["flops", "--image-size", "640"], "expected WxH"),
    (["flops", "--text-tokens", "-1"], "argument --text-tokens: must be >= 0, got -1"),
    (["flops", "--decode-tokens", "-3"], "argument --decode-tokens: must be >= 0"),
    (["bench", "--questions", "0"], "argument --questions: must be >= 1"),
    (["bench", "--batch-size", "0"], "argument --batch-size: must be >= 1"),
    (["parity", "--samples", "0"], "argument --samples: must be >= 1"),
    (["parity", "--tolerance", "0"], "argument --tolerance: expected a number > 0, got '0'"),
    (["parity", "--tolerance", "nan"], "expected a number > 0, got 'nan'"),
    (["train", "--steps", "0"], "argument --steps: must be >= 1"),
    (["train", "--threads", "0"], "argument --threads: must be >= 1"),
    (["train", "--recipe", "bogus"], "unknown training recipe 'bogus'"),
])
def test_bad_numbers_and_choices_are_refused_at_parse_time(argv, message, capsys, no_model_load,
                                                           tmp_path, data, image):
    required = {  # a later repeat of an option wins, so the case's own value is the one read
        "evaluate": ["--model", "m", "--data", data, "--out", tmp_path / "o"],
        "generate": ["--model", "m", "--image", image, "--text", "t"],
        "flops": ["--model", "nanovlm-460m"],
        "bench": ["--model", "nanovlm-460m", "--random"],
        "parity": ["--upstream", tmp_path, "--model", "m", "--data", data, "--out", tmp_path / "p"],
        "train": ["--recipe", "demo-smoke", "--data", tmp_path, "--out", tmp_path / "t"],
    }[argv[0]]
    argv = [argv[0], *required, *argv[1:]]
    rc, err = run(argv, capsys)
    assert rc == 2
    line = one_clear_line(err)
    assert message in line and line.startswith(f"nanovlm-lite {argv[0]}: ")


# ---- devices: what this torch can use, with the fix in the message -----------------------
def test_unknown_device_names_the_accepted_ones(capsys, data, tmp_path, no_model_load):
    rc, err = run(["evaluate", "--model", "m", "--data", data, "--out", tmp_path / "o",
                   "--device", "gpu"], capsys)
    assert rc == 2
    assert "expected auto, cpu, cuda, cuda:N or mps (did you mean cuda?)" in one_clear_line(err)


def test_cuda_on_a_cpu_only_build_says_so(capsys, data, tmp_path, no_model_load, monkeypatch):
    monkeypatch.setattr(torch.version, "cuda", None)
    monkeypatch.setattr(torch.version, "hip", None, raising=False)
    for command in (["evaluate", "--model", "m", "--data", data, "--out", tmp_path / "o"],
                    ["bench", "--model", "nanovlm-460m", "--random"],
                    ["train", "--recipe", "demo-smoke", "--data", tmp_path, "--out", tmp_path / "t"]):
        rc, err = run([*command, "--device", "cuda"], capsys)
        assert rc == 2
        line = one_clear_line(err)
        assert "CPU-only build" in line and "--device cpu" in line


def test_cuda_without_a_visible_gpu_or_out_of_range(monkeypatch):
    monkeypatch.setattr(torch.version, "cuda", "12.8")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    with pytest.raises(model_load.DeviceError, match="no CUDA device is visible"):
        model_load.check_device("cuda")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert model_load.check_device("cuda:1") == "cuda:1"
    with pytest.raises(model_load.DeviceError, match=r"only 2 CUDA device\(s\) visible"):
        model_load.check_device("cuda:2")
    # the Python API checks the same way
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    with pytest.raises(model_load.DeviceError):
        model_load.resolve_device("cuda")


# ---- --set values, by each setting's declared type ---------------------------------------
@pytest.mark.parametrize("item, message", [
    ("keep_ratio=abc", "--set keep_ratio=abc: keep_ratio takes a number, got 'abc'"),
    ("keep_ratio=nan", "keep_ratio takes a number, got 'nan'"),
    ("skip_lm_blocks=1", "skip_lm_blocks takes a list of integers, e.g. [1] or [3, 4], got '1'"),
    ("skip_lm_blocks=[1.5]", "skip_lm_blocks takes a list of integers"),
    ("tile_size=64.0", "tile_size takes an integer or null, got '64.0'"),
    ("tile_size=-64", "tile_size must be >= 1 (null = the checkpoint's vit_img_size), got -64"),
    ("tile_size=0", "tile_size must be >= 1"),
    ("global_only=maybe", "global_only takes true or false, got 'maybe'"),
    ("global_only=yes", "global_only takes true or false, got 'yes'"),
    ("max_new_tokens=true", "max_new_tokens takes an integer, got 'true'"),
    ("seed=1.5", "seed takes an integer, got '1.5'"),
    ("pool=bogus", "pool must be one of"),
    ("tile_sz=64", "unknown setting 'tile_sz'"),
    ("global_only", "expected KEY=VALUE"),
    ("prompt=defualt", "prompt 'defualt' is not a template name; did you mean 'default'?"),
])
def test_set_values_are_parsed_by_the_settings_type(item, message, capsys, data, tmp_path,
                                                    no_model_load):
    rc, err = run(["evaluate", "--model", "m", "--data", data, "--out", tmp_path / "o",
                   "--set", item], capsys)
    assert rc == 2
    assert message in one_clear_line(err)


def test_set_accepts_what_the_types_say(tmp_path):
    from nanovlm_lite.study import point_settings
    s = point_settings(None, None, ["global_only=true", "tile_size=256", "keep_ratio=1",
                                    "select=null", "skip_lm_blocks=[3, 4]", "pool=none",
                                    "prompt={question} ({letters})"])
    assert s.global_only is True and s.tile_size == 256 and s.keep_ratio == 1.0
    assert s.skip_lm_blocks == (3, 4) and s.pool is None and s.select is None
    assert s.prompt == "{question} ({letters})"  # taken verbatim, not as YAML


# ---- prompt templates ----------------------------------------------------------------------
@pytest.mark.parametrize("prompt, message", [
    ("defualt", "prompt 'defualt' is not a template name; did you mean 'default'? known: cloze, da, "
                "default, seed-1, seed-2, short (or a literal template, which contains {question})"),
    ("{question} {foo}", "uses unknown field 'foo'"),
    ("{question} {", "is not a valid format string"),
])
def test_unknown_prompt_is_one_line_listing_the_known_ones(prompt, message, capsys, data,
                                                           tmp_path, no_model_load):
    rc, err = run(["evaluate", "--model", "m", "--data", data, "--out", tmp_path / "o",
                   "--prompt", prompt], capsys)
    assert rc == 2
    assert message in one_clear_line(err)


# ---- checkpoints and tokenizers ----------------------------------------------------------
@pytest.fixture()
def checkpoints(fixture_dir, tmp_path):
    root = tmp_path / "ck"
    for name in ("noweights", "notok", "hubtok", "badcfg"):
        shutil.copytree(fixture_dir, root / name, ignore=shutil.ignore_patterns("expected", "images"))
    (root / "noweights" / "model.safetensors").unlink()
    shutil.rmtree(root / "notok" / "tokenizer")
    shutil.rmtree(root / "hubtok" / "tokenizer")
    for name, change in [("hubtok", {"lm_tokenizer": "someorg/not-cached-tokenizer"}),
                         ("badcfg", {"vit_img_size": "512"})]:
        cfg = json.loads((root / name / "config.json").read_text())
        cfg.update(change)
        (root / name / "config.json").write_text(json.dumps(cfg))
    return root


@pytest.fixture()
def no_hub(monkeypatch, tmp_path):
    """The hub must not be asked: any download attempt fails the test."""
    import huggingface_hub
    from transformers import AutoTokenizer
    original = AutoTokenizer.from_pretrained

    def local_only(source, *a, **k):
        assert k.get("local_files_only") or Path(source).is_dir(), f"hub asked for {source!r}"
        return original(source, *a, **k)
    monkeypatch.setattr(AutoTokenizer, "from_pretrained", local_only)
    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-hub-cache"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    for proxy in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(proxy, raising=False)


@pytest.mark.parametrize("model, message", [
    ("ck/noweights", "ck/noweights: no model.safetensors beside config.json"),
    ("ck/notok", "no such directory (config.json's lm_tokenizer 'tokenizer', looked for beside the "
                 "checkpoint), and not a hub id"),
    ("ck/hubtok", "Could not reach the Hugging Face Hub for tokenizer 'someorg/not-cached-tokenizer'"),
    ("ck/badcfg", "config.json: vit_img_size must be an integer, got '512'"),
    ("ck/doesnotexist", "model 'ck/doesnotexist': no such directory or file (ck/ exists here, so "
                        "this names a local directory, not a hub id)"),
    ("./x", "model './x': no such directory or file"),
    ("~/nanovlm-lite-no-such-dir", "no such directory or file"),
    ("a/b/c", "model 'a/b/c': no such directory or file"),
    ("foo", "not a checkpoint directory, a config.json, a preset (nanovlm-460m) or a hub id"),
    ("nanovlm-460m", "an architecture without weights; logits needs a checkpoint"),
])
def test_checkpoint_problems_are_named_at_once(model, message, checkpoints, image, tmp_path,
                                               capsys, monkeypatch, no_hub):
    monkeypatch.chdir(tmp_path)
    rc, err = run(["logits", "--model", model, "--image", image, "--text", "hi",
                   "--out", tmp_path / "l.npy"], capsys)
    assert rc == 2
    assert message in one_clear_line(err)
    assert not (tmp_path / "l.npy").exists()


def test_missing_tokenizer_override_is_named(fixture_dir, image, tmp_path, capsys, no_hub):
    rc, err = run(["logits", "--model", fixture_dir, "--image", image, "--text", "hi",
                   "--out", tmp_path / "l.npy", "--tokenizer", tmp_path / "no-tok"], capsys)
    assert rc == 2
    assert "no-tok': no such directory" in one_clear_line(err)


def test_flops_needs_only_the_config(checkpoints, capsys):
    """A directory without weights is still a fine input for FLOP counting."""
    capsys.readouterr()
    assert main(["flops", "--model", str(checkpoints / "noweights"), "--text-tokens", "5",
                 "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["total"] > 0


@pytest.mark.parametrize("change, message", [
    ({"vit_patch_size": 0}, "vit_patch_size must be >= 1, got 0"),
    ({"lm_n_blocks": 2.0}, "lm_n_blocks must be an integer, got 2.0"),
    ({"lm_tie_weights": 1}, "lm_tie_weights must be true or false, got 1"),
    ({"vit_dropout": 1.5}, "vit_dropout must be in [0, 1), got 1.5"),
    ({"vlm_extra_tokens": [1]}, "vlm_extra_tokens must be a mapping"),
    ({"lm_tokenizer": None}, "lm_tokenizer must be a string, got None"),
])
def test_config_json_values_name_the_file_and_field(change, message, fixture_dir, tmp_path):
    from nanovlm_lite.model.config import ConfigError, load_config
    cfg = json.loads((fixture_dir / "config.json").read_text())
    cfg.update(change)
    path = tmp_path / "config.json"
    path.write_text(json.dumps(cfg))
    with pytest.raises(ConfigError) as e:
        load_config(path)
    assert str(e.value).startswith(f"{path}: ") and message in str(e.value)


# ---- unwritable outputs: found before any work -------------------------------------------
@pytest.mark.parametrize("command, out, message", [
    ("logits", "afile/sub/l.npy", "cannot be created: {tmp}/afile is a file, not a directory"),
    ("logits", ".", "is a directory; give a file name"),
    ("evaluate", "afile", "exists and is a file; an output directory is expected"),
    ("evaluate", "afile/out", "cannot be created"),
    ("train", "afile/t", "cannot be created"),
    ("parity", "afile/p.json", "cannot be created"),
])
def test_unwritable_out_is_found_before_any_work(command, out, message, tmp_path, capsys,
                                                 image, data, no_model_load):
    (tmp_path / "afile").write_text("x")
    out = tmp_path / out
    args = {"logits": ["--model", "m", "--image", image, "--text", "t"],
            "evaluate": ["--model", "m", "--data", data],
            "train": ["--recipe", "demo-smoke", "--data", tmp_path],
            "parity": ["--upstream", tmp_path, "--model", "m", "--data", data]}[command]
    rc, err = run([command, *args, "--out", out], capsys)
    assert rc == 2
    line = one_clear_line(err)
    assert f"--out {out}" in line and message.format(tmp=tmp_path) in line


def test_permission_denied_out_names_the_path(tmp_path, capsys, image, monkeypatch, no_model_load):
    """What a non-root user (or a read-only mount) meets: the probe write fails."""
    import tempfile

    def denied(*a, **k):
        raise PermissionError(13, "Permission denied")
    monkeypatch.setattr(tempfile, "mkstemp", denied)
    out = tmp_path / "locked" / "l.npy"
    rc, err = run(["logits", "--model", "m", "--image", image, "--text", "t", "--out", out], capsys)
    assert rc == 2
    assert f"--out {out}: cannot be written (Permission denied)" in one_clear_line(err)


def test_writable_out_check_leaves_nothing_behind(tmp_path):
    from nanovlm_lite.errors import check_writable
    check_writable(tmp_path / "a" / "b" / "l.npy")
    check_writable(tmp_path / "d", directory=True)
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["a", "b", "d"]


def test_bad_image_is_found_before_the_model_loads(tmp_path, capsys, no_model_load):
    rc, err = run(["logits", "--model", "m", "--image", tmp_path / "nope.png", "--text", "t",
                   "--out", tmp_path / "l.npy"], capsys)
    assert rc == 2 and "--image" in one_clear_line(err) and "no such file" in err


def test_parser_error_is_one_line_naming_the_subcommand(capsys):
    rc, err = run(["evaluate"], capsys)
    assert rc == 2
    line = one_clear_line(err)
    assert line.startswith("nanovlm-lite evaluate: the following arguments are required")
    assert line.endswith("(see nanovlm-lite evaluate --help)")
    assert cli.Parser is type(build_parser())
