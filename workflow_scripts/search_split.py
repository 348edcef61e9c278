"""Hold questions out of the training split for the search (search/split.py)."""
import sys

sys.stdout = sys.stderr = open(snakemake.log[0], "w", buffering=1)

from nanovlm_lite.search.split import split_for_search

counts = split_for_search(snakemake.input.data, snakemake.output.fit, snakemake.output.search,
                          snakemake.params.questions, snakemake.params.seed)
print(counts)
