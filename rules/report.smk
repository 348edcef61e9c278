# One table for the study, and its Pareto plot (shown by `snakemake --report`).


rule aggregate:
    input:
        metrics=all_points("metrics.json"),
        flops=all_points("flops.json"),
        code=package_sources("report/aggregate.py", "settings.py"),
    output:
        report(
            "results/{study}/summary.csv",
            caption="../config/report/summary.rst",
            category="Summary",
        ),
    log:
        "logs/{study}/aggregate.log",
    benchmark:
        "results/{study}/benchmarks/aggregate.tsv"
    threads: 1
    conda:
        "../envs/nanovlm-lite.yaml"
    script:
        "../workflow_scripts/aggregate.py"


rule pareto:
    input:
        summary="results/{study}/summary.csv",
        code=package_sources("report/pareto.py"),
    output:
        png=report(
            "results/{study}/pareto.png",
            caption="../config/report/pareto.rst",
            category="Pareto",
        ),
        svg=report(
            "results/{study}/pareto.svg",
            caption="../config/report/pareto.rst",
            category="Pareto",
        ),
    log:
        "logs/{study}/pareto.log",
    benchmark:
        "results/{study}/benchmarks/pareto.tsv"
    params:
        threshold=config["threshold"],
        title=lambda w: f"{w.study}: accuracy vs inference FLOPs ({config['model']})",
    threads: 1
    conda:
        "../envs/nanovlm-lite.yaml"
    script:
        "../workflow_scripts/pareto.py"


onsuccess:
    summary = f"results/{STUDY}/summary.csv"
    if os.path.exists(summary):
        import pandas as pd
        from nanovlm_lite.report.aggregate import format_summary

        print(f"\n{summary}:")
        print(format_summary(pd.read_csv(summary)))
