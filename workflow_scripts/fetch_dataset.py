"""Fetch one dataset split as parquet, checked (rows, columns)."""
import sys

sys.stdout = sys.stderr = open(snakemake.log[0], "w", buffering=1)

from nanovlm_lite.data.fetch import fetch_dataset

fetch_dataset(snakemake.params.repo, snakemake.wildcards.split, snakemake.output[0],
              revision=snakemake.params.revision,
              expected_rows=snakemake.params.expected_rows)
