"""A point's pruned checkpoint: the base model's MLPs narrowed to their most important channels."""
import sys

sys.stdout = sys.stderr = open(snakemake.log[0], "w", buffering=1)

import torch

from nanovlm_lite.prune.apply import prune_checkpoint

torch.set_num_threads(snakemake.threads)
prune_checkpoint(snakemake.input.model, snakemake.input.importance, snakemake.params.ratios,
                 snakemake.output[0])
