"""Activation-based importance of every MLP channel, on a calibration set of the training split."""
import sys

sys.stdout = sys.stderr = open(snakemake.log[0], "w", buffering=1)

import torch

from nanovlm_lite.prune.importance import compute_importance

torch.set_num_threads(snakemake.threads)
compute_importance(snakemake.input.model, snakemake.input.data, snakemake.params.settings,
                   snakemake.output[0], samples=snakemake.params.samples,
                   seed=snakemake.params.seed, device=snakemake.params.device,
                   threads=snakemake.threads, tokenizer=snakemake.params.tokenizer)
