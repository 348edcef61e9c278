"""What the search found: found.yaml, the trials table and its plot."""
import sys

sys.stdout = sys.stderr = open(snakemake.log[0], "w", buffering=1)

from nanovlm_lite.report.search_plot import plot_trials
from nanovlm_lite.search.result import write_result

content = write_result(snakemake.input.plan, snakemake.output.trials, snakemake.output.found)
print(content)
plot_trials(snakemake.output.trials, snakemake.output.png, snakemake.params.threshold)
