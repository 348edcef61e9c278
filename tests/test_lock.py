"""The locks (locks/cpu.txt for the demo and the tests, locks/gpu.txt for the real study)
agree with pyproject.toml, carry a hash for every pin, and envs/*.yaml pin the same versions;
the environment block every result carries (environment.py) says what it ran on."""
import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.version import Version

from nanovlm_lite import environment as env
from nanovlm_lite.upstream_env import matching_torchvision

REPO = Path(__file__).resolve().parents[1]
LOCKS = ("locks/cpu.txt", "locks/gpu.txt")


def pyproject_requirements() -> list[Requirement]:
    """The package's dependencies and its test extra (what `make venv` installs)."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return [Requirement(r) for r in
            project["dependencies"] + project["optional-dependencies"]["test"]]


def lock_problems(requirements, pins: dict[str, str]) -> list[str]:
    problems = []
    for req in requirements:
        name = env.normalize(req.name)
        if name not in pins:
            problems.append(f"{req.name} ({req}) is not in the lock")
        elif not req.specifier.contains(Version(pins[name]), prereleases=True):
            problems.append(f"{req.name}: locked {pins[name]}, outside pyproject's {req}")
    return problems


@pytest.mark.parametrize("lock", LOCKS)
def test_lock_holds_every_pyproject_dependency_in_its_range(lock):
    pins = env.lock_pins((REPO / lock).read_text())
    problems = lock_problems(pyproject_requirements(), pins)
    assert not problems, f"{lock} disagrees with pyproject.toml (run `make lock`): {problems}"


def test_the_check_catches_a_missing_or_out_of_range_dependency():
    pins = env.lock_pins((REPO / "locks/cpu.txt").read_text())
    reqs = pyproject_requirements()
    del pins["jsonschema"]
    pins["numpy"] = "1.20.0"
    problems = lock_problems(reqs + [Requirement("brand-new-dep>=1")], pins)
    assert len(problems) == 3
    assert any("numpy: locked 1.20.0, outside" in p for p in problems)
    assert any(p.startswith("jsonschema ") for p in problems)
    assert any(p.startswith("brand-new-dep ") for p in problems)


@pytest.mark.parametrize("lock", LOCKS)
def test_every_pin_carries_a_hash(lock):
    entries = (REPO / lock).read_text().split("\n")
    starts = [i for i, line in enumerate(entries) if env.PIN.match(line)]
    for i in starts:
        assert entries[i].rstrip().endswith("\\") and "--hash=sha256:" in entries[i + 1], \
            f"{lock}: {entries[i]} has no hash"


def test_cpu_lock_takes_torchs_cpu_build_and_gpu_lock_a_paired_torchvision():
    cpu = env.lock_pins((REPO / "locks/cpu.txt").read_text())
    gpu = env.lock_pins((REPO / "locks/gpu.txt").read_text())
    assert cpu["torch"].endswith("+cpu") and "torchvision" not in cpu
    assert not gpu["torch"].endswith("+cpu")
    assert gpu["torchvision"] == matching_torchvision(gpu["torch"]) and "einops" in gpu
    assert not any(name.startswith("nvidia-") for name in cpu)
    # the same releases of everything both share, torch's build aside
    shared = (set(cpu) & set(gpu)) - {"torch"}
    assert {n: cpu[n] for n in shared} == {n: gpu[n] for n in shared}


@pytest.mark.parametrize("yaml_path, lock", [("envs/nanovlm-lite.yaml", "locks/cpu.txt"),
                                             ("envs/upstream.yaml", "locks/gpu.txt")])
def test_conda_envs_pin_the_locks_versions(yaml_path, lock):
    spec = yaml.safe_load((REPO / yaml_path).read_text())
    pip = next(d["pip"] for d in spec["dependencies"] if isinstance(d, dict))
    pinned = {}
    for line in pip:
        m = env.PIN.match(line)
        if m:
            pinned[env.normalize(m[1])] = m[2]
    assert pinned == env.lock_pins((REPO / lock).read_text()), \
        f"{yaml_path} disagrees with {lock}: run `python locks/write_conda_envs.py`"
    assert "-e .." in " ".join(pip)


def test_check_says_whether_the_installed_packages_are_the_locked_ones(tmp_path, capsys):
    lock = tmp_path / "lock.txt"
    lock.write_text(f"numpy=={env.installed_version('numpy')} \\\n    --hash=sha256:00\n")
    assert env.check(str(lock)) == 0
    assert "all 1 packages installed exactly" in capsys.readouterr().out
    lock.write_text("numpy==0.0.1 \\\n    --hash=sha256:00\nno-such-dist==1.0\n")
    assert env.check(str(lock)) == 1
    err = capsys.readouterr().err
    assert "numpy: locked 0.0.1" in err and "no-such-dist: locked 1.0, installed None" in err


def test_environment_block_names_versions_lock_and_machine_without_torch():
    """Built from metadata and /proc/cpuinfo: merge and the report rules never load torch."""
    code = (
        "import importlib.util, json, sys\n"
        f"spec = importlib.util.spec_from_file_location('e', {str(Path(env.__file__))!r})\n"
        "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)\n"
        "print(json.dumps([m.environment(), 'torch' in sys.modules, 'transformers' in sys.modules]))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    block, torch_loaded, transformers_loaded = json.loads(out.stdout)
    assert not torch_loaded and not transformers_loaded
    for key in ("python", "torch", "transformers", "tokenizers", "numpy", "pillow",
                "safetensors", "lock_sha256", "lock_differs", "cpu", "machine"):
        assert key in block
    assert block["torch"] and block["numpy"] and block["cpu"]


def test_runtime_block_adds_torchs_view():
    import torch
    block = env.environment(runtime=True, device="cpu")
    assert block["device"] == "cpu" and block["gpu"] is None
    assert block["torch_cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert block["torch_threads"] == torch.get_num_threads()


def test_lock_state_reads_the_venvs_copy_of_its_lock(tmp_path, monkeypatch):
    copy = tmp_path / env.LOCK_COPY
    copy.write_text(f"numpy=={env.installed_version('numpy')} \\\n    --hash=sha256:00\n"
                    "pillow==0.0.1 \\\n    --hash=sha256:00\n")
    monkeypatch.setattr(sys, "prefix", str(tmp_path))
    env.lock_state.cache_clear()
    try:
        state = env.lock_state()
    finally:
        env.lock_state.cache_clear()
    import hashlib
    assert state["lock_sha256"] == hashlib.sha256(copy.read_bytes()).hexdigest()
    assert state["lock_differs"] == {"pillow": env.installed_version("pillow")}


def test_merge_carries_the_shards_environment(tmp_path):
    from nanovlm_lite.evaluate.merge import point_environment
    from nanovlm_lite.evaluate.records import read_partial, write_records
    a = {"torch": "2.13.0+cpu", "cpu": "A", "torch_threads": 2}
    paths = [write_records(tmp_path / f"{i}.jsonl", [{"question_id": f"q{i}"}], {"f": 1}, env)
             for i, env in enumerate([a, dict(a)])]
    assert read_partial(paths[0]) == ({"f": 1}, [{"question_id": "q0"}])  # records unchanged
    assert point_environment(paths) == a
    other = write_records(tmp_path / "2.jsonl", [], {"f": 1}, dict(a, cpu="B"))
    mixed = point_environment(paths + [other])
    assert mixed["cpu"] == "A" and [e["cpu"] for e in mixed["shards_differ"]] == ["A", "B"]
    bare = write_records(tmp_path / "3.jsonl", [], {"f": 1})
    assert "lock_sha256" in point_environment([bare])  # none recorded: merge's own
