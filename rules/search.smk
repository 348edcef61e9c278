# The budgeted search for the cheapest point over the bar (docs/search.md): hold questions
# out of the training split, plan the candidates cheapest first, race them in one or more
# workers sharing an Optuna journal, then name what was found. The found point is then
# evaluated on the study's split like any hand-listed point (all_points, common.smk).


if SEARCH:

    rule search_split:
        input:
            data=TRAIN_SOURCE,
            code=package_sources("search/split.py", "data/", "files.py"),
        output:
            fit=TRAIN_DATA,
            search=SEARCH_DATA,
        log:
            f"logs/{STUDY}/search_split.log",
        benchmark:
            f"results/{STUDY}/benchmarks/search_split.tsv"
        params:
            questions=SEARCH.holdout_questions,
            seed=SEARCH.seed,
        threads: 1
        resources:
            **rule_resources("search_split"),
        conda:
            "../envs/nanovlm-lite.yaml"
        script:
            "../workflow_scripts/search_split.py"

    rule search_plan:
        input:
            checked=ancient(POINT_CHECK),  # every point fits the model (check.smk)
            model=BASE_MODEL,
            data=SEARCH_DATA,
            lock=LOCK_FILE,
            code=package_sources("search/", "model/", "evaluate/", "reduce/", "data/", "settings.py",
                                 "engine.py", "lm.py", "plan.py", "flops.py", "sidecar.py",
                                 "__init__.py", "errors.py", "fieldtypes.py", "hub.py",
                                 "machine.py", "parity.py", "files.py", "upstream_env.py",
                                 "environment.py"),
        output:
            plan="results/{study}/search/plan.json",
        log:
            "logs/{study}/search/plan.log",
        benchmark:
            "results/{study}/benchmarks/search/plan.tsv"
        params:
            search=config["search"],
            threshold=config["threshold"],
            prompt_template=config["prompt_template"],
            tokenizer=config["tokenizer"],
        threads: config["threads"]["evaluate"]
        resources:
            **rule_resources("search_plan"),
        conda:
            "../envs/nanovlm-lite.yaml"
        script:
            "../workflow_scripts/search_plan.py"

    # Each worker is a job of its own (several run at once on a cluster); they share the
    # plan's journal, so what one has evaluated the others never repeat.
    rule search_worker:
        input:
            plan="results/{study}/search/plan.json",
            model=BASE_MODEL,
            data=SEARCH_DATA,
            lock=LOCK_FILE,
            code=package_sources("search/", "model/", "evaluate/", "reduce/", "data/", "settings.py",
                                 "engine.py", "lm.py", "plan.py", "flops.py", "sidecar.py",
                                 "__init__.py", "errors.py", "fieldtypes.py", "hub.py",
                                 "machine.py", "parity.py", "files.py", "upstream_env.py",
                                 "environment.py"),
        output:
            "results/{study}/search/workers/{worker}.json",
        log:
            "logs/{study}/search/worker-{worker}.log",
        benchmark:
            "results/{study}/benchmarks/search/worker-{worker}.tsv"
        params:
            budget=SEARCH.budget,
            batch_size=config["batch_size"],
            device=config["device"],
            prompt_template=config["prompt_template"],
            tokenizer=config["tokenizer"],
        wildcard_constraints:
            worker=r"\d+",
        threads: config["threads"]["evaluate"]
        resources:
            gpu=1,
            **rule_resources("search_worker"),
        conda:
            "../envs/nanovlm-lite.yaml"
        script:
            "../workflow_scripts/search_worker.py"

    checkpoint search:
        input:
            plan="results/{study}/search/plan.json",
            workers=expand("results/{{study}}/search/workers/{worker}.json",
                           worker=range(SEARCH.workers)),
            code=package_sources("search/result.py", "search/racing.py", "search/worker.py",
                                 "search/space.py", "report/search_plot.py"),
        output:
            found="results/{study}/search/found.yaml",
            trials=report("results/{study}/search/trials.csv", category="Search"),
            png=report("results/{study}/search/trials.png", category="Search"),
        log:
            "logs/{study}/search/result.log",
        benchmark:
            "results/{study}/benchmarks/search/result.tsv"
        params:
            threshold=config["threshold"],
        threads: 1
        resources:
            **rule_resources("search"),
        conda:
            "../envs/nanovlm-lite.yaml"
        script:
            "../workflow_scripts/search_result.py"
