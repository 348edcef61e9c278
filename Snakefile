# nanoVLM-Lite: accuracy vs inference FLOPs of nanoVLM on A-OKVQA, one study per config.
#   snakemake --cores all                               the real study (config/config.yaml)
#   snakemake --cores 2 --configfile config/demo.yaml   the offline demo
from snakemake.utils import min_version

min_version("9.0")


# The real study is the default; a --configfile (e.g. config/demo.yaml) replaces it
# rather than being merged into it, so one study's points never leak into another.
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


report: "config/report/workflow.rst"


include: "rules/common.smk"
include: "rules/check.smk"
include: "rules/upstream.smk"
include: "rules/data.smk"
include: "rules/compress_keys.smk"
include: "rules/compress.smk"
include: "rules/train.smk"
include: "rules/evaluate.smk"
include: "rules/flops.smk"
include: "rules/search.smk"
include: "rules/report.smk"


rule all:
    default_target: True
    input:
        expand("results/{study}/summary.csv", study=STUDY),
        expand("results/{study}/pareto.{ext}", study=STUDY, ext=["png", "svg"]),
