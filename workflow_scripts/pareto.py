"""The accuracy vs FLOPs Pareto plot (both cheapest points over the bar marked) and the
one-page study report."""
import sys

sys.stdout = sys.stderr = open(snakemake.log[0], "w", buffering=1)

from nanovlm_lite.report.front import format_bar
from nanovlm_lite.report.page import write_page
from nanovlm_lite.report.pareto import plot_pareto

threshold = snakemake.params.threshold
chosen = plot_pareto(snakemake.input.summary, snakemake.output.png, snakemake.output.svg,
                     threshold=threshold, title=snakemake.params.title)
print(format_bar(chosen, threshold))
write_page(snakemake.input.summary, snakemake.output.svg, snakemake.output.page, threshold,
           metrics_paths=[*snakemake.input.metrics, *snakemake.input.found_metrics], study=snakemake.params.study,
           model=snakemake.params.model, dataset=dict(snakemake.params.dataset),
           data_path=snakemake.input.data, parity_path=snakemake.input.parity or None,
           upstream=dict(snakemake.params.upstream),
           found_yaml=snakemake.input.found or None,
           trials_csv=snakemake.input.trials[0] if snakemake.input.trials else None,
           trials_png=snakemake.input.trials[1] if snakemake.input.trials else None,
           recovery_csv=snakemake.input.recovery)
