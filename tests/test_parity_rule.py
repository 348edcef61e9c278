"""The parity check's plumbing: upstream's code runs in a subprocess on dataset samples and
a disagreement fails with a report. The real upstream clone needs the network, so a
stand-in with upstream's module layout and call signatures plays it here."""
import json
import textwrap

import numpy as np

import pytest

from nanovlm_lite.parity import ParityError, run_parity

from helpers import make_parquet
from standins import upstream as standin_upstream

FAKE_PROCESSORS = standin_upstream.PROCESSORS


@pytest.fixture()
def fake_upstream(tmp_path):
    return standin_upstream.write_layout(tmp_path / "nanoVLM")


def test_parity_passes_and_writes_a_report(fake_upstream, fixture_dir, tmp_path):
    data = make_parquet(tmp_path / "q.parquet", n=2)
    report = run_parity(fake_upstream, fixture_dir, data, tmp_path / "parity.json", n_samples=2)
    written = json.loads((tmp_path / "parity.json").read_text())
    assert report["ok"] and written["ok"] and len(written["cases"]) == 2
    assert all(c["same_input_ids"] and c["same_greedy_tokens"] for c in written["cases"])
    assert max(c["logits_max_abs_diff"] for c in written["cases"]) < 1e-4


def test_parity_fails_past_the_tolerance(fixture_dir, tmp_path, monkeypatch):
    data = make_parquet(tmp_path / "q.parquet", n=1)
    report = run_parity_with_shift(fixture_dir, data, tmp_path, monkeypatch)
    assert report["ok"] is False
    assert report["cases"][0]["logits_max_abs_diff"] == pytest.approx(0.01, abs=1e-4)
    assert report["cases"][0]["same_input_ids"] and report["cases"][0]["same_greedy_tokens"]


def run_parity_with_shift(fixture_dir, data, tmp_path, monkeypatch):
    """Upstream's side replaced by our own numbers with the logits shifted by 0.01."""
    import nanovlm_lite.parity as parity
    from PIL import Image

    import nanovlm_lite
    engine = nanovlm_lite.load(str(fixture_dir))

    def fake_upstream(upstream_dir, model_dir, cases, out_npz, max_new_tokens=4, python=None):
        out = {}
        for k, case in enumerate(cases):
            p = engine.prepare(Image.open(case["image"]), case["text"])
            out[f"case{k}_input_ids"] = np.array(p.input_ids)
            out[f"case{k}_grid"] = np.array(p.image.grid)
            out[f"case{k}_tiles"] = p.image.tiles.numpy()
            out[f"case{k}_logits"] = engine.next_token_logits([p])[0].numpy() + 0.01
            out[f"case{k}_tokens"] = np.array(engine.generate([p], max_new_tokens=max_new_tokens,
                                                              stop_at_eos=False)[0])
        return out

    monkeypatch.setattr(parity, "run_upstream", fake_upstream)
    with pytest.raises(ParityError, match="differs from upstream"):
        run_parity("unused", fixture_dir, data, tmp_path / "parity.json", n_samples=1)
    return json.loads((tmp_path / "parity.json").read_text())


def test_broken_upstream_code_is_reported(tmp_path, fixture_dir):
    data = make_parquet(tmp_path / "q.parquet", n=1)
    with pytest.raises(ParityError, match="upstream nanoVLM's code failed"):
        run_parity(tmp_path / "no-such-clone", fixture_dir, data, tmp_path / "p.json", n_samples=1)


def _interpreter(tmp_path, name, pythonpath=None):
    """An executable standing in for another environment's python: it notes that it ran,
    then runs this interpreter (with `pythonpath` first, to hide or shadow modules)."""
    import os
    import sys
    script = tmp_path / name
    env = f'PYTHONPATH="{pythonpath}${{PYTHONPATH:+:$PYTHONPATH}}" ' if pythonpath else ""
    script.write_text(f'#!/bin/sh\ntouch "{tmp_path}/{name}.ran"\n{env}exec "{sys.executable}" "$@"\n')
    script.chmod(0o755)
    assert os.access(script, os.X_OK)
    return script


def test_parity_runs_upstream_with_the_given_interpreter(fake_upstream, fixture_dir, tmp_path):
    data = make_parquet(tmp_path / "q.parquet", n=1)
    python = _interpreter(tmp_path, "upstream-python")
    report = run_parity(fake_upstream, fixture_dir, data, tmp_path / "parity.json", n_samples=1,
                        python=str(python))
    assert report["ok"] and report["python"] == str(python)
    assert (tmp_path / "upstream-python.ran").exists()


def test_missing_torchvision_is_one_line_with_the_matching_install_command(
        fake_upstream, fixture_dir, tmp_path):
    """Upstream's code imports torchvision; an interpreter without it gets one line naming
    the module and the pip command for the torchvision release of its torch, --no-deps."""
    import torch

    from nanovlm_lite.upstream_env import matching_torchvision
    (fake_upstream / "data" / "processors.py").write_text(
        "import torchvision.transforms\n" + textwrap.dedent(FAKE_PROCESSORS))
    hidden = tmp_path / "no-torchvision"
    hidden.mkdir()  # shadows an installed torchvision: this interpreter "has none"
    (hidden / "torchvision.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'torchvision'\", name='torchvision')\n")
    python = _interpreter(tmp_path, "bare-python", pythonpath=hidden)
    data = make_parquet(tmp_path / "q.parquet", n=1)
    with pytest.raises(ParityError) as err:
        run_parity(fake_upstream, fixture_dir, data, tmp_path / "parity.json", n_samples=1,
                   python=str(python))
    message = str(err.value)
    assert "\n" not in message and "'torchvision'" in message
    assert (f"`{python} -m pip install --no-deps "
            f"torchvision=={matching_torchvision(torch.__version__)} einops`") in message


def test_torchvision_release_matches_torch():
    from nanovlm_lite.upstream_env import matching_torchvision
    assert matching_torchvision("2.13.0+cpu") == "0.28.0"
    assert matching_torchvision("2.14.1") == "0.29.1"
    assert matching_torchvision("2.5.1+cu124") == "0.20.1"  # a known published pair
    with pytest.raises(ValueError, match="torch 2.x"):
        matching_torchvision("1.13.1")


def test_make_study_installs_the_matching_torchvision_without_touching_torch():
    """`make study` runs upstream_env install: pip gets torchvision pinned to this torch's
    release and --no-deps (so torch stays), never a bare `torchvision`."""
    import subprocess
    import sys

    import torch

    from nanovlm_lite.upstream_env import install, matching_torchvision
    seen = []
    assert install("py", run=lambda cmd: seen.append(cmd) or subprocess.CompletedProcess(cmd, 0)) == 0
    assert seen == [["py", "-m", "pip", "install", "--no-deps",
                     f"torchvision=={matching_torchvision(torch.__version__)}", "einops"]]
    from pathlib import Path
    root = Path(__file__).resolve().parents[1]
    dry = subprocess.run(["make", "-n", "study", f"VENV={Path(sys.executable).parent.parent}"],
                         cwd=root, capture_output=True, text=True)
    assert dry.returncode == 0, dry.stderr
    assert "-m nanovlm_lite.upstream_env install" in dry.stdout
    assert "pip install --quiet torchvision" not in dry.stdout
