# Evaluation: one job per point x shard, then one merge per point.


rule evaluate:
    input:
        checked=ancient(POINT_CHECK),  # every point fits the model (check.smk)
        model=point_model,
        found=point_found_file,  # a point the search found: its settings (search.smk)
        data=EVAL_DATA,
        parity=PARITY_REPORT if UPSTREAM["enabled"] else [],
        lock=LOCK_FILE,
        code=package_sources("model/", "evaluate/", "reduce/", "data/", "settings.py", "engine.py",
                             "lm.py", "plan.py", "flops.py", "sidecar.py",
                             "__init__.py", "errors.py", "fieldtypes.py", "hub.py", "machine.py",
                             "parity.py", "files.py", "upstream_env.py", "environment.py"),
    output:
        "results/{study}/points/{point}/shards/{shard}.jsonl",
    log:
        "logs/{study}/evaluate/{point}/{shard}.log",
    benchmark:
        "results/{study}/benchmarks/evaluate/{point}/{shard}.tsv"
    params:
        settings=point_settings,
        n_shards=config["shards"],
        max_samples=config["max_samples"],
        batch_size=config["batch_size"],
        device=config["device"],
        prompt_template=config["prompt_template"],
        tokenizer=config["tokenizer"],
    threads: config["threads"]["evaluate"]
    resources:
        gpu=1,
        **rule_resources("evaluate"),
    conda:
        "../envs/nanovlm-lite.yaml"
    script:
        "../workflow_scripts/evaluate.py"


rule merge:
    input:
        shards=shard_paths,
        data=EVAL_DATA,
        found=point_found_file,
        code=package_sources("evaluate/", "data/", "settings.py", "errors.py", "fieldtypes.py",
                             "provenance.py", "files.py", "hub.py", "environment.py"),
    output:
        predictions="results/{study}/points/{point}/predictions.json",
        records="results/{study}/points/{point}/records.jsonl",
        metrics="results/{study}/points/{point}/metrics.json",
    log:
        "logs/{study}/merge/{point}.log",
    benchmark:
        "results/{study}/benchmarks/merge/{point}.tsv"
    params:
        settings=point_settings,
        max_samples=config["max_samples"],
        model=config["model"],
        prompt_template=config["prompt_template"],
    threads: 1
    resources:
        **rule_resources("merge"),
    conda:
        "../envs/nanovlm-lite.yaml"
    script:
        "../workflow_scripts/merge.py"
