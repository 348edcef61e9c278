"""Shared fixtures: the upstream parity checkpoint in ../shared, found from the repo."""
import json
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]


def _find_shared() -> Path:
    for base in (REPO, *REPO.parents):
        candidate = base / "shared" / "fixtures" / "nanovlm-upstream-tiny"
        if candidate.exists():
            return candidate
    raise FileNotFoundError("shared/fixtures/nanovlm-upstream-tiny not found beside the repo")


FIXTURE = _find_shared()


@pytest.fixture(autouse=True)
def _deterministic():
    torch.manual_seed(0)
    torch.set_num_threads(2)


@pytest.fixture(scope="session")
def fixture_dir() -> Path:
    return FIXTURE


@pytest.fixture(scope="session")
def fixture_cases() -> list[dict]:
    return json.loads((FIXTURE / "cases.json").read_text())["cases"]
