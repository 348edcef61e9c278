"""One CSV row per point: accuracy, FLOPs, settings."""
import sys

sys.stdout = sys.stderr = open(snakemake.log[0], "w", buffering=1)

from nanovlm_lite.report.aggregate import aggregate

aggregate(list(snakemake.input.metrics), list(snakemake.input.flops), snakemake.output[0])
