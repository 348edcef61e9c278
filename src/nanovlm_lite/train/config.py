"""A recipe's training options (TrainConfig), apart from the loop so that checking a
study's `train_overrides` when the workflow is read needs no torch."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass


@dataclass
class TrainConfig:
    objective: str = "answer"          # answer | letter | direct | answer+letter
    trainable: str = "all"             # all | projector | lm | vit-frozen | lora | learned-pool
    steps: int = 800
    images_per_batch: int = 32
    per_image: int = 4                 # questions (examples) per image in a batch
    accumulate: int = 1                # micro-batches per optimizer step
    lr: float = 3e-3
    warmup: int = 50
    min_lr_ratio: float = 0.05
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.95)
    grad_clip: float = 1.0
    seed: int = 0
    lora_rank: int = 8
    lora_alpha: float = 16.0
    eval_every: int = 0                # steps between validations (0: only at the end)
    eval_questions: int = 500          # validation questions (evenly spaced through the set)
    eval_scoring: tuple[str, ...] = ("cloze",)
    save_every: int = 100              # steps between trainer_state.pt saves (0: never)
    # distillation (distill.py, teacher.py): alpha * T^2 KL(teacher || student) at
    # temperature T + (1 - alpha) * the hard-label loss; alpha 0 trains on the labels only
    alpha: float = 0.0
    temperature: float = 1.0
    teacher_top_k: int = 32            # answer tokens: the teacher's top-k kept per token

    def __post_init__(self):
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1] (the distillation term's weight), "
                             f"got {self.alpha}")
        if not self.temperature > 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        if self.teacher_top_k < 1:
            raise ValueError(f"teacher_top_k must be >= 1, got {self.teacher_top_k}")

    @property
    def distils(self) -> bool:
        """Whether the loss has a distillation term (and so needs the teacher's outputs)."""
        return self.alpha > 0

    def replace(self, **changes) -> "TrainConfig":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["betas"] = list(self.betas)
        d["eval_scoring"] = list(self.eval_scoring)
        return d
