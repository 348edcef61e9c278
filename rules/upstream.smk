# Upstream nanoVLM at the pinned commit, and the parity check of our engine against it.


localrules:
    clone_upstream,


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
    conda:
        "../envs/nanovlm-lite.yaml"
    script:
        "../workflow_scripts/clone_upstream.py"


rule parity:
    input:
        upstream=UPSTREAM_DIR,
        model=BASE_MODEL,
        data=EVAL_DATA,
        code=package_sources("parity.py", "upstream_runner.py", "model/", "engine.py", "lm.py"),
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
    conda:
        "../envs/upstream.yaml"
    script:
        "../workflow_scripts/parity.py"
