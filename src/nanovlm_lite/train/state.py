"""Resumable training state: `trainer_state.pt` in the output directory, written
atomically every `save_every` steps. It holds what the run has changed (the trainable
parameters; frozen ones are rebuilt from the same source), the optimizer and scheduler
state, every RNG, the step and the history, so a resumed CPU run repeats exactly."""
from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import torch

from ..errors import UserError

STATE_NAME = "trainer_state.pt"


class StateMismatchError(UserError, ValueError):
    """A saved training state made by another setup than the run asked for."""


def rng_state() -> dict:
    state = {"torch": torch.get_rng_state(), "python": random.getstate(),
             "numpy": np.random.get_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def trainable_state(model) -> dict[str, torch.Tensor]:
    return {n: p.detach().cpu().clone() for n, p in model.named_parameters() if p.requires_grad}


def save_state(out_dir, *, step: int, model, optimizer, scheduler, history: list, fingerprint: dict) -> Path:
    path = Path(out_dir) / STATE_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save({"step": step, "params": trainable_state(model), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(), "rng": rng_state(), "history": history,
                "fingerprint": fingerprint}, tmp)
    os.replace(tmp, path)
    return path


def load_state(out_dir, *, model, optimizer, scheduler, fingerprint: dict) -> tuple[int, list] | None:
    """Restores a saved run into model/optimizer/scheduler/RNGs; returns (step, history),
    or None when there is no state. A state from a different run setup is an error."""
    path = Path(out_dir) / STATE_NAME
    if not path.exists():
        return None
    state = torch.load(path, map_location="cpu", weights_only=False)
    if state["fingerprint"] != fingerprint:
        diff = sorted(k for k in set(fingerprint) | set(state["fingerprint"])
                      if fingerprint.get(k) != state["fingerprint"].get(k))
        raise StateMismatchError(f"{path}: saved by a different training setup (differs in {diff}); "
                         f"delete it or train into another directory")
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name, value in state["params"].items():
            params[name].copy_(value)
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    set_rng_state(state["rng"])
    return state["step"], state["history"]
