# Training: the offline demo's model from scratch, and per-point fine-tuning.

if config["train"]:

    rule train_demo_model:
        input:
            train=TRAIN_DATA,
            val=EVAL_DATA,
            lock=LOCK_FILE,
            code=package_sources("train/", "model/", "data/", "reduce/", "settings.py", "lm.py",
                                 "engine.py", "sidecar.py", "evaluate/",
                                 "__init__.py", "errors.py", "fieldtypes.py", "flops.py", "hub.py",
                                 "machine.py", "parity.py", "plan.py", "files.py",
                                 "provenance.py", "environment.py", "upstream_env.py"),
        output:
            directory(BASE_MODEL),
        log:
            f"logs/{STUDY}/train_demo_model.log",
        benchmark:
            f"results/{STUDY}/benchmarks/train_demo_model.tsv"
        params:
            recipe=config["train_recipe"],
            overrides=config["train_overrides"],
        threads: config["threads"]["train"]
        resources:
            gpu=1,
            **rule_resources("train_demo_model"),
        conda:
            "../envs/nanovlm-lite.yaml"
        script:
            "../workflow_scripts/train_demo_model.py"


rule finetune:
    input:
        checked=ancient(POINT_CHECK),  # every point fits the model (check.smk)
        model=point_start_model,  # the base model, or the pruned copy for the point's ratios
        data=TRAIN_DATA,
        val=EVAL_DATA,  # validation on the study's evaluated split
        teacher=point_teacher,  # a distilling recipe's teacher outputs (compress_keys.smk)
        lock=LOCK_FILE,
        code=package_sources("train/", "model/", "data/", "reduce/", "settings.py", "lm.py",
                                 "engine.py", "sidecar.py", "evaluate/",
                                 "__init__.py", "errors.py", "fieldtypes.py", "flops.py", "hub.py",
                                 "machine.py", "parity.py", "plan.py", "files.py",
                                 "provenance.py", "environment.py", "upstream_env.py"),
    output:
        directory("results/{study}/points/{point}/finetuned"),
    log:
        "logs/{study}/finetune/{point}.log",
    benchmark:
        "results/{study}/benchmarks/finetune/{point}.tsv"
    params:
        recipe=lambda w: POINTS[w.point]["finetune"],
        settings=point_settings,
        device=config["device"],
        overrides=config["train_overrides"],
    threads: config["threads"]["finetune"]
    resources:
        gpu=1,
        **rule_resources("finetune"),
    conda:
        "../envs/nanovlm-lite.yaml"
    script:
        "../workflow_scripts/finetune.py"
