"""Train the tiny demo model (nanoVLM format) from scratch."""
import sys

sys.stdout = sys.stderr = open(snakemake.log[0], "w", buffering=1)

from pathlib import Path

import torch

from nanovlm_lite.train.recipes import train_demo_model

torch.set_num_threads(snakemake.threads)
train_demo_model(Path(snakemake.input.train), snakemake.output[0],
                 threads=snakemake.threads, recipe=snakemake.params.recipe,
                 overrides=snakemake.params.overrides, val_data=snakemake.input.val)
