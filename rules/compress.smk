# Compression: the teacher's outputs for distillation, and width pruning (channel
# importance, then the pruned checkpoints: one per calibration and ratios, shared).
# docs/compression.md says how they work.
# Keys and input functions: rules/compress_keys.smk.


rule teacher:
    input:
        checked=ancient(POINT_CHECK),  # every point fits the model (check.smk)
        model=BASE_MODEL,
        data=TRAIN_DATA,
        lock=LOCK_FILE,
        code=package_sources("train/", "model/", "data/", "reduce/", "evaluate/", "settings.py",
                             "lm.py", "engine.py", "sidecar.py", "plan.py", "flops.py",
                             "provenance.py", "__init__.py", "errors.py", "fieldtypes.py",
                             "hub.py", "machine.py", "parity.py", "files.py", "upstream_env.py",
                             "environment.py"),
    output:
        outputs="results/{study}/teachers/{teacher}/outputs.safetensors",
        record="results/{study}/teachers/{teacher}/teacher.json",
    log:
        "logs/{study}/teacher/{teacher}.log",
    benchmark:
        "results/{study}/benchmarks/teacher/{teacher}.tsv"
    wildcard_constraints:
        teacher=_one_of(TEACHERS),
    params:
        settings=lambda w: TEACHERS[w.teacher]["settings"],
        objective=lambda w: TEACHERS[w.teacher]["objective"],
        top_k=lambda w: TEACHERS[w.teacher]["top_k"],
        device=config["device"],
        tokenizer=config["tokenizer"],
    threads: config["threads"]["finetune"]
    resources:
        gpu=1,
        **rule_resources("teacher"),
    conda:
        "../envs/nanovlm-lite.yaml"
    script:
        "../workflow_scripts/teacher.py"


rule importance:
    input:
        checked=ancient(POINT_CHECK),  # every point fits the model (check.smk)
        model=BASE_MODEL,
        data=TRAIN_DATA,
        lock=LOCK_FILE,
        code=package_sources("prune/", "train/", "model/", "data/", "reduce/", "evaluate/",
                             "settings.py", "lm.py", "engine.py", "sidecar.py", "plan.py",
                             "flops.py", "provenance.py", "__init__.py", "errors.py",
                             "fieldtypes.py", "hub.py", "machine.py", "parity.py", "files.py",
                             "upstream_env.py", "environment.py"),
    output:
        "results/{study}/importance/{calibration}.safetensors",
    log:
        "logs/{study}/importance/{calibration}.log",
    benchmark:
        "results/{study}/benchmarks/importance/{calibration}.tsv"
    wildcard_constraints:
        calibration=_one_of(CALIBRATIONS),
    params:
        settings=lambda w: CALIBRATIONS[w.calibration]["settings"],
        samples=lambda w: CALIBRATIONS[w.calibration]["samples"],
        seed=lambda w: CALIBRATIONS[w.calibration]["seed"],
        device=config["device"],
        tokenizer=config["tokenizer"],
    threads: config["threads"]["finetune"]
    resources:
        gpu=1,
        **rule_resources("importance"),
    conda:
        "../envs/nanovlm-lite.yaml"
    script:
        "../workflow_scripts/importance.py"


rule prune:
    input:
        checked=ancient(POINT_CHECK),  # every point fits the model (check.smk)
        model=BASE_MODEL,
        importance=lambda w: f"results/{w.study}/importance/{PRUNED[w.pruned]['calibration']}.safetensors",
        lock=LOCK_FILE,
        code=package_sources("prune/", "train/", "model/", "data/", "reduce/", "evaluate/",
                             "settings.py", "lm.py", "engine.py", "sidecar.py", "plan.py",
                             "flops.py", "provenance.py", "__init__.py", "errors.py",
                             "fieldtypes.py", "hub.py", "machine.py", "parity.py", "files.py",
                             "upstream_env.py", "environment.py"),
    output:
        directory("results/{study}/pruned/{pruned}"),
    log:
        "logs/{study}/prune/{pruned}.log",
    benchmark:
        "results/{study}/benchmarks/prune/{pruned}.tsv"
    wildcard_constraints:
        pruned=_one_of(PRUNED),
    params:
        ratios=lambda w: PRUNED[w.pruned]["ratios"],
    threads: 1
    resources:
        **rule_resources("prune"),
    conda:
        "../envs/nanovlm-lite.yaml"
    script:
        "../workflow_scripts/prune.py"
