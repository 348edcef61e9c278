"""Our engine against upstream's code on the real checkpoint; fails past the tolerance."""
import sys

sys.stdout = sys.stderr = open(snakemake.log[0], "w", buffering=1)

import torch

from nanovlm_lite.parity import run_parity

torch.set_num_threads(snakemake.threads)
run_parity(snakemake.input.upstream, snakemake.input.model, snakemake.input.data,
           snakemake.output[0], n_samples=snakemake.params.n_samples,
           tolerance=snakemake.params.tolerance, device=snakemake.params.device,
           python=snakemake.params.python)
