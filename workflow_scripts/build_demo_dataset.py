"""Build the offline demo dataset (easy-vqa in A-OKVQA's schema)."""
import sys

sys.stdout = sys.stderr = open(snakemake.log[0], "w", buffering=1)

from pathlib import Path

from nanovlm_lite.data.easyvqa import build_demo_dataset

build_demo_dataset(Path(snakemake.output.train).parent, max_train=snakemake.params.max_train,
                   max_val=snakemake.params.max_val, seed=snakemake.params.seed)
