"""Download the model and its tokenizer from the hub into resources/models/."""
import sys

sys.stdout = sys.stderr = open(snakemake.log[0], "w", buffering=1)

from nanovlm_lite.model.checkpoint import download_model

download_model(snakemake.params.repo_id, snakemake.output[0],
               revision=snakemake.params.revision)
