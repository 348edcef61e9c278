# The model checkpoint and the dataset: downloads go to resources/ and data/.


if not MODEL_IS_LOCAL:

    rule download_model:
        input:
            code=package_sources("model/checkpoint.py"),
        output:
            directory(BASE_MODEL),
        log:
            f"logs/{STUDY}/download_model.log",
        benchmark:
            f"results/{STUDY}/benchmarks/download_model.tsv"
        params:
            repo_id=config["model"],
            revision=config["revision"],
        threads: 1
        localrule: True
        conda:
            "../envs/nanovlm-lite.yaml"
        script:
            "../workflow_scripts/download_model.py"


if DATASET["build"]:

    rule build_demo_dataset:
        input:
            code=package_sources("data/"),
        output:
            train=f"{DATA_DIR}/train.parquet",
            val=f"{DATA_DIR}/val.parquet",
        log:
            f"logs/{STUDY}/build_demo_dataset.log",
        benchmark:
            f"results/{STUDY}/benchmarks/build_demo_dataset.tsv"
        params:
            build=DATASET["build"],
            max_train=DATASET["max_train"],
            max_val=DATASET["max_val"],
            yes_no_keep=DATASET["yes_no_keep"],
            train_images=DATASET["train_images"],
            val_images=DATASET["val_images"],
            seed=DATASET["seed"],
        threads: 1
        resources:
            **rule_resources("build_demo_dataset"),
        conda:
            "../envs/nanovlm-lite.yaml"
        script:
            "../workflow_scripts/build_demo_dataset.py"

else:

    rule fetch_dataset:
        input:
            local=lambda w: [p for p in [dataset_source(w.split)[0]] if os.path.isfile(p)],
            code=package_sources("data/"),
        output:
            f"{DATA_DIR}/{{split}}.parquet",
        log:
            f"logs/{STUDY}/fetch_dataset/{{split}}.log",
        benchmark:
            f"results/{STUDY}/benchmarks/fetch_dataset/{{split}}.tsv"
        params:
            repo=lambda w: dataset_source(w.split)[0],
            expected_rows=lambda w: dataset_source(w.split)[1],
            revision=DATASET["revision"],
        wildcard_constraints:
            split="|".join(re.escape(s) for s in sorted({DATASET["split"], DATASET["train_split"]})),
        threads: 1
        localrule: True
        conda:
            "../envs/nanovlm-lite.yaml"
        script:
            "../workflow_scripts/fetch_dataset.py"
