"""Clone upstream nanoVLM at the pinned commit (verified)."""
import sys

sys.stdout = sys.stderr = open(snakemake.log[0], "w", buffering=1)

from nanovlm_lite.upstream import clone_upstream

clone_upstream(snakemake.params.url, snakemake.params.commit, snakemake.output[0])
