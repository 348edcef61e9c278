"""The teacher's outputs on the training split, once per study and teacher settings."""
import sys

sys.stdout = sys.stderr = open(snakemake.log[0], "w", buffering=1)

from pathlib import Path

import torch

from nanovlm_lite.train.teacher import compute_teacher

torch.set_num_threads(snakemake.threads)
compute_teacher(snakemake.input.model, snakemake.input.data, snakemake.params.settings,
                snakemake.params.objective, Path(snakemake.output.outputs).parent,
                top_k=snakemake.params.top_k or 32, device=snakemake.params.device,
                threads=snakemake.threads, tokenizer=snakemake.params.tokenizer)
