"""Fine-tune the base model with a point's recipe and settings."""
import sys

sys.stdout = sys.stderr = open(snakemake.log[0], "w", buffering=1)

from pathlib import Path

import torch

from nanovlm_lite.train.recipes import finetune

torch.set_num_threads(snakemake.threads)
teacher = snakemake.input.teacher  # a distilling recipe's teacher outputs, else empty
finetune(snakemake.input.model, snakemake.input.data, snakemake.params.recipe,
         snakemake.params.settings, snakemake.output[0], threads=snakemake.threads,
         device=snakemake.params.device, overrides=snakemake.params.overrides,
         val_data=snakemake.input.val,
         teacher=Path(teacher[0]).parent if teacher else None)
