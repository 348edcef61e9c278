"""FLOPs per question of one point: analytic over its records, measured on a sample."""
import sys

sys.stdout = sys.stderr = open(snakemake.log[0], "w", buffering=1)

import torch

from nanovlm_lite.flops_profile import profile_point

torch.set_num_threads(snakemake.threads)
profile_point(snakemake.input.model, snakemake.input.records, snakemake.params.settings,
              snakemake.output[0], measure_samples=snakemake.params.measure_samples,
              threads=snakemake.threads)
