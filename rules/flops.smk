# FLOPs per point: analytic count over the evaluated questions, measured on a sample.


rule flops:
    input:
        checked=ancient(POINT_CHECK),  # every point fits the model (check.smk)
        model=point_model,
        found=point_found_file,  # a point the search found: its settings (search.smk)
        records="results/{study}/points/{point}/records.jsonl",
        lock=LOCK_FILE,
        code=package_sources("flops.py", "flops_measure.py", "flops_profile.py", "plan.py",
                             "model/", "reduce/", "settings.py", "engine.py",
                             "lm.py", "sidecar.py",
                             "__init__.py", "data/", "errors.py", "evaluate/prompts.py",
                             "fieldtypes.py", "hub.py", "parity.py", "study.py", "files.py",
                             "upstream_env.py", "environment.py"),
    output:
        "results/{study}/points/{point}/flops.json",
    log:
        "logs/{study}/flops/{point}.log",
    benchmark:
        "results/{study}/benchmarks/flops/{point}.tsv"
    params:
        settings=point_settings,
        measure_samples=config["flops"]["measure_samples"],
    threads: config["threads"]["flops"]
    resources:
        **rule_resources("flops"),
    conda:
        "../envs/nanovlm-lite.yaml"
    script:
        "../workflow_scripts/flops.py"
