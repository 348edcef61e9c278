"""Evaluate one shard of one point: per-question records as JSONL (resumable)."""
import sys

sys.stdout = sys.stderr = open(snakemake.log[0], "w", buffering=1)

import torch

from nanovlm_lite.evaluate.run import evaluate_shard

torch.set_num_threads(snakemake.threads)
evaluate_shard(snakemake.input.model, snakemake.input.data, snakemake.params.settings,
               shard=int(snakemake.wildcards.shard), n_shards=snakemake.params.n_shards,
               out_path=snakemake.output[0], max_samples=snakemake.params.max_samples,
               batch_size=snakemake.params.batch_size, device=snakemake.params.device,
               threads=snakemake.threads, prompt_template=snakemake.params.prompt_template,
               tokenizer=snakemake.params.tokenizer)
