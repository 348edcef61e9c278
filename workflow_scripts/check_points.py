"""Every point of the study against the model's config.json (no weights), before any job
that uses a point: one message naming every bad point and setting, or the record of what
was checked."""
import sys

log = open(snakemake.log[0], "w", buffering=1)
sys.stdout = sys.stderr = log

from nanovlm_lite.study_check import StudyCheckError, check_model_dir

points = snakemake.config["points"]  # read here, not as params: see rules/check.smk
try:
    check_model_dir(snakemake.input.model, points, snakemake.output[0])
except StudyCheckError as e:
    # the message, not a trace, both in the log and where Snakemake's output goes
    print(e, file=log)
    print(f"\n{e}\n", file=sys.__stderr__, flush=True)
    raise SystemExit(1)
print(f"{len(points)} points fit {snakemake.input.model}/config.json")
