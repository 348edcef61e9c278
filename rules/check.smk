# The study's points checked against the model's shapes as soon as the model is there
# (downloaded or trained) and before any job that uses a point: every job below takes
# this rule's output as an input (ancient: re-checking after a config edit never reruns
# them). What the config alone decides is checked when the workflow is read
# (rules/common.smk); docs/checks.md says what is checked where.
POINT_CHECK = "results/{study}/checks/points.json"


rule check_points:
    input:
        model=BASE_MODEL,
        code=package_sources("study_check.py", "study.py", "strict_yaml.py", "settings.py",
                             "model/", "train/", "data/",
                             "reduce/", "evaluate/", "sidecar.py", "lm.py", "engine.py",
                             "plan.py", "flops.py", "provenance.py", "__init__.py", "errors.py",
                             "fieldtypes.py", "hub.py", "machine.py", "parity.py", "files.py",
                             "upstream_env.py"),
    output:
        POINT_CHECK,
    log:
        "logs/{study}/check_points.log",
    benchmark:
        "results/{study}/benchmarks/check_points.tsv"
    params:
        points=lambda w: {name: dict(sorted(s.items())) for name, s in POINTS.items()},
    threads: 1
    localrule: True
    conda:
        "../envs/nanovlm-lite.yaml"
    script:
        "../workflow_scripts/check_points.py"
