# The study's points checked against the model's shapes (nanovlm_lite/study_check.py),
# every problem named in one message, before any job that uses a point or the GPU: each
# such rule takes this rule's output as an input (`checked=ancient(POINT_CHECK)`).
#
# - the model already there when the workflow is read (a local checkpoint, or one
#   downloaded or trained by an earlier run): every point is checked then (common.smk's
#   `_check_points_now`), so `snakemake -n` fails too, and this rule has run already;
# - the model made by this run (downloaded, or trained for the demo): this rule checks
#   every point as soon as it is there, before anything that uses it starts.
#
# The rule has no params and no code inputs, and its model input is ancient: once its
# output exists it never runs again. That is on purpose: Snakemake 9 (dag.py,
# update_needrun) skips the own rerun reasons (params, code, mtime) of every job
# downstream of a job that has to run, then drops those that reach it only through ancient
# inputs, so a check that ran again whenever a point changed would hide the changed
# point's own reason to rerun. The check at parse time covers every later change.
POINT_CHECK = "results/{study}/checks/points.json"


rule check_points:
    input:
        model=ancient(BASE_MODEL),
    output:
        POINT_CHECK,
    log:
        "logs/{study}/check_points.log",
    benchmark:
        "results/{study}/benchmarks/check_points.tsv"
    threads: 1
    localrule: True
    conda:
        "../envs/nanovlm-lite.yaml"
    script:
        "../workflow_scripts/check_points.py"
