# Upstream nanoVLM at the pinned commit, and the parity check of our engine against it.


rule clone_upstream:
    input:
        code=package_sources("upstream.py"),
    output:
        directory(UPSTREAM_DIR),
    log:
        f"logs/{STUDY}/clone_upstream.log",
    benchmark:
        f"results/{STUDY}/benchmarks/clone_upstream.tsv"
    params:
        url=UPSTREAM["url"],
        commit=UPSTREAM["commit"],
    threads: 1
    localrule: True
    conda:
        "../envs/nanovlm-lite.yaml"
    script:
        "../workflow_scripts/clone_upstream.py"


rule parity:
    input:
        checked=ancient(POINT_CHECK),  # the GPU waits for the points' check (check.smk)
        upstream=UPSTREAM_DIR,
        model=BASE_MODEL,
        data=EVAL_DATA,
        lock=LOCK_FILE,
        code=package_sources("parity.py", "upstream_runner.py", "model/", "engine.py", "lm.py",
                             "__init__.py", "data/aokvqa.py", "evaluate/prompts.py", "fieldtypes.py",
                             "hub.py", "plan.py", "reduce/", "settings.py", "sidecar.py",
                             "files.py", "upstream_env.py"),
    output:
        "results/{study}/parity/report.json",
    log:
        "logs/{study}/parity.log",
    benchmark:
        "results/{study}/benchmarks/parity.tsv"
    params:
        n_samples=config["parity"]["n_samples"],
        tolerance=config["parity"]["tolerance"],
        device=config["parity"]["device"],
        python=config["parity"]["python"],
    threads: config["threads"]["parity"]
    resources:
        gpu=1,
        **rule_resources("parity"),
    conda:
        "../envs/upstream.yaml"
    script:
        "../workflow_scripts/parity.py"
