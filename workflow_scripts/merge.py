"""Merge a point's shards: predictions (official format), records, metrics."""
import sys

sys.stdout = sys.stderr = open(snakemake.log[0], "w", buffering=1)

from pathlib import Path

from nanovlm_lite.evaluate.merge import merge_point

merge_point(list(snakemake.input.shards), snakemake.input.data, snakemake.params.settings,
            Path(snakemake.output.metrics).parent, point=snakemake.wildcards.point,
            max_samples=snakemake.params.max_samples, model=snakemake.params.model,
            prompt_template=snakemake.params.prompt_template)
