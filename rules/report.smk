SEARCH_TRIALS = ([f"results/{STUDY}/search/trials.csv", f"results/{STUDY}/search/trials.png"]
                 if SEARCH else [])


# One table for the study, its Pareto plot and the one-page study report (all shown by
# `snakemake --report`).


rule aggregate:
    input:
        metrics=all_points("metrics.json"),
        flops=all_points("flops.json"),
        records=all_points("records.jsonl"),  # per-question answers: the paired comparisons
        found_metrics=found_points_files("metrics.json"),  # the points the search found
        found_flops=found_points_files("flops.json"),
        found_records=found_points_files("records.jsonl"),
        found=SEARCH_FOUND,  # the points the search found, marked so in the table
        code=package_sources("report/aggregate.py", "report/front.py", "report/format.py",
                             "report/recovery.py", "evaluate/stats.py", "settings.py",
                             "search/space.py"),
    output:
        report(
            "results/{study}/summary.csv",
            caption="../config/report/summary.rst",
            category="Summary",
        ),
        recovery=report(
            "results/{study}/recovery.csv",
            caption="../config/report/recovery.rst",
            category="Summary",
        ),
    log:
        "logs/{study}/aggregate.log",
    benchmark:
        "results/{study}/benchmarks/aggregate.tsv"
    params:
        threshold=config["threshold"],
        reference=config["reference_point"],
    threads: 1
    resources:
        **rule_resources("aggregate"),
    conda:
        "../envs/nanovlm-lite.yaml"
    script:
        "../workflow_scripts/aggregate.py"


# The plot, and the page that shows it with the table, parity, prompts, data and code.
rule pareto:
    input:
        summary="results/{study}/summary.csv",
        recovery="results/{study}/recovery.csv",
        metrics=all_points("metrics.json"),
        found_metrics=found_points_files("metrics.json"),
        data=EVAL_DATA,
        parity=PARITY_REPORT if UPSTREAM["enabled"] else [],
        found=SEARCH_FOUND,
        trials=SEARCH_TRIALS,
        code=package_sources("report/pareto.py", "report/page.py", "report/search_plot.py", "report/front.py",
                             "report/format.py"),
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
        page=report(
            "results/{study}/study.html",
            caption="../config/report/study.rst",
            category="Study",
        ),
    log:
        "logs/{study}/pareto.log",
    benchmark:
        "results/{study}/benchmarks/pareto.tsv"
    params:
        threshold=config["threshold"],
        title=lambda w: f"{w.study}: accuracy vs inference FLOPs ({config['model']})",
        study=STUDY,
        model=config["model"],
        dataset=DATASET,
        upstream=UPSTREAM,
    threads: 1
    resources:
        **rule_resources("pareto"),
    conda:
        "../envs/nanovlm-lite.yaml"
    script:
        "../workflow_scripts/pareto.py"


onsuccess:
    summary = f"results/{STUDY}/summary.csv"
    if os.path.exists(summary):
        import pandas as pd
        from nanovlm_lite.report.aggregate import format_summary
        from nanovlm_lite.report.front import bar_points, format_bar

        table = pd.read_csv(summary)
        print(f"\n{summary}:")
        print(format_summary(table))
        print(format_bar(bar_points(table, config["threshold"]), config["threshold"]))
