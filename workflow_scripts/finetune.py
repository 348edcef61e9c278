"""Fine-tune the base model with a point's recipe and settings."""
import sys

sys.stdout = sys.stderr = open(snakemake.log[0], "w", buffering=1)

import torch

from nanovlm_lite.train.recipes import finetune

torch.set_num_threads(snakemake.threads)
finetune(snakemake.input.model, snakemake.input.data, snakemake.params.recipe,
         snakemake.params.settings, snakemake.output[0], threads=snakemake.threads,
         device=snakemake.params.device, overrides=snakemake.params.overrides,
         val_data=snakemake.input.val)
