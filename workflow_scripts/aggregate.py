"""One CSV row per point: accuracy with its interval, the paired comparison with the
reference point, FLOPs, settings."""
import sys

sys.stdout = sys.stderr = open(snakemake.log[0], "w", buffering=1)

from nanovlm_lite.report.aggregate import aggregate

found = []
if snakemake.input.found:
    from nanovlm_lite.search.space import read_found
    found = list(read_found(snakemake.input.found))

inputs = snakemake.input
aggregate([*inputs.metrics, *inputs.found_metrics], [*inputs.flops, *inputs.found_flops],
          snakemake.output[0], records_paths=[*inputs.records, *inputs.found_records],
          reference=snakemake.params.reference, threshold=snakemake.params.threshold,
          found=found, recovery_csv=snakemake.output.recovery)
