"""The accuracy vs TFLOPs Pareto plot, cheapest point over the bar marked."""
import sys

sys.stdout = sys.stderr = open(snakemake.log[0], "w", buffering=1)

from nanovlm_lite.report.pareto import plot_pareto

best = plot_pareto(snakemake.input.summary, snakemake.output.png, snakemake.output.svg,
                   threshold=snakemake.params.threshold, title=snakemake.params.title)
print(f"cheapest point over {snakemake.params.threshold:.0%}: {best}")
