"""Shared fixtures: the upstream parity checkpoint, kept in the repo under tests/fixtures/."""
import json
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures"
# made with upstream nanoVLM's own code (its README says how); nothing outside the repo
FIXTURE = FIXTURES / "nanovlm-upstream-tiny"


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


def pytest_collection_modifyitems(items):
    """Tests marked `slow` (the two longest real Snakemake runs, over a minute each) go
    first: pytest-xdist hands tests out in order, and a long one handed out last keeps the
    suite waiting on one worker while the other idles."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)
