"""envs/*.yaml from the locks (`make lock` and `make lock-gpu` run it): the conda
environments of `--software-deployment-method conda` pin exactly the versions the locks pin.

conda's pip section cannot carry the lock's hashes (pip's hash-checking mode refuses the
editable `-e ..` beside them), so the yaml pins versions only; the venv (`make venv`) is the
hash-checked install. tests/test_lock.py checks that both agree with their lock.

    python locks/write_conda_envs.py            rewrites envs/nanovlm-lite.yaml and envs/upstream.yaml
"""
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*==\S+)")
# yaml file -> (lock, what the environment is for, extra pip lines before the pins)
ENVS = {
    "envs/nanovlm-lite.yaml": (
        "locks/cpu.txt", "nanovlm-lite",
        "# The package and its dependencies, for `--software-deployment-method conda`.\n"
        "# (CI and `make` use a plain virtual environment, installed from the lock with hashes.)",
        # torch's CPU build is on PyTorch's wheel page, not on PyPI
        ["--find-links https://download.pytorch.org/whl/torch/"]),
    "envs/upstream.yaml": (
        "locks/gpu.txt", "nanovlm-lite-upstream",
        "# For the parity rule: our package plus what upstream nanoVLM's own code imports\n"
        "# (torchvision for its image transforms, einops), since upstream runs in a subprocess\n"
        "# beside ours. The real study's set-up: PyPI's (CUDA) torch with its torchvision.",
        []),
}


def pins(lock: Path) -> list[str]:
    return [m[1] for line in lock.read_text().splitlines() if (m := PIN.match(line))]


def render(lock: str, name: str, header: str, options: list[str]) -> str:
    lines = [header,
             f"# Generated from {lock} by locks/write_conda_envs.py (`make lock`, `make lock-gpu`):",
             "# the same versions, without the hashes. Do not edit by hand.",
             f"name: {name}", "channels:", "  - conda-forge", "  - nodefaults", "dependencies:",
             "  - python =3.11", "  - pip", "  - git", "  - pip:"]
    lines += [f"      - {o}" for o in options]
    lines += [f"      - {p}" for p in pins(ROOT / lock)]
    lines += ["      - -e ..   # this repository (the path is relative to this file)"]
    return "\n".join(lines) + "\n"


def main() -> int:
    for path, spec in ENVS.items():
        (ROOT / path).write_text(render(*spec))
        print(f"{path} <- {spec[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
