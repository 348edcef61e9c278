"""One CSV row per point: accuracy with its interval, the paired comparison with the
reference point, FLOPs, settings."""
import sys

sys.stdout = sys.stderr = open(snakemake.log[0], "w", buffering=1)

from nanovlm_lite.report.aggregate import aggregate

aggregate(list(snakemake.input.metrics), list(snakemake.input.flops), snakemake.output[0],
          records_paths=list(snakemake.input.records), reference=snakemake.params.reference,
          threshold=snakemake.params.threshold)
