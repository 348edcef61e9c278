"""`make slurm-smoke`: the sweep through `--profile profiles/slurm` on a real SLURM cluster.

Run inside `.ci/slurm/cluster.sh run` (a one-node cluster). A 3-point study
(.ci/slurm/smoke.yaml) in a scratch directory, then checks that
  1. every non-local job went through sbatch: sacct lists each with its rule name (the
     search's two workers as two jobs),
  2. summary.csv and the Pareto plot are written, the search's found point among them,
  3. a rerun has nothing to do,
  4. a job scancel'ed mid-run is retried by the profile (retries: 1) and the study finishes
     with the same summary.
"""
import collections
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / ".ci" / "slurm" / "smoke.yaml"
WORK = Path(os.environ.get("SLURM_SMOKE_DIR", "/var/tmp/nanovlm-slurm")) / "work"
STUDY = WORK / "results" / "slurm-smoke"
SNAKEMAKE = [str(Path(sys.executable).parent / "snakemake"), "--profile", "profiles/slurm",
             "--directory", str(WORK), "--configfile", str(CONFIG),
             # first status check after 2 s instead of 40: the smoke's jobs take seconds
             "--slurm-init-seconds-before-status-checks", "2"]
# rules that never go through sbatch; besides these, every rule snakemake ran as a
# "localrule" (a rule declaring `localrule: True`, e.g. check_points)
LOCAL_RULES = {"clone_upstream", "download_model", "fetch_dataset", "check_points", "all"}


def say(msg):
    print(f"[slurm-smoke] {msg}", flush=True)


def fail(msg):
    say(f"FAILED: {msg}")
    sys.exit(1)


def snakemake(*args, log):
    with open(WORK / log, "w") as out:
        return subprocess.Popen([*SNAKEMAKE, *args], cwd=REPO, stdout=out,
                                stderr=subprocess.STDOUT, text=True)


def finish(proc, log):
    if proc.wait() != 0:
        print((WORK / log).read_text()[-6000:])
        fail(f"snakemake exited {proc.returncode} (log above: {WORK / log})")
    return (WORK / log).read_text()


def sacct():
    """[(jobid, rule, state)] of every job in accounting (the cluster is this run's)."""
    out = subprocess.run(["sacct", "-X", "-n", "-P", "-a", "-S", "now-2hours",
                          "-o", "JobID,Comment,State"], capture_output=True, text=True,
                         check=True).stdout
    jobs = []
    for line in out.splitlines():
        jobid, comment, state = line.split("|")
        rule = comment.removeprefix("rule_").split("_wildcards_")[0]
        jobs.append((jobid, rule, state.split()[0]))
    return jobs


def started_rules(text):
    """rule -> jobs snakemake started (its "rule X:" / "checkpoint X:" lines; the jobs a
    checkpoint adds are not in the first "Job stats" table)."""
    return collections.Counter(re.findall(r"^(?:rule|checkpoint) (\w+):$", text, flags=re.M))


def main():
    start = time.time()
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    earlier = {jobid for jobid, _, _ in sacct()}  # accounting outlives a cluster restart

    # 1-2. the study, every job through sbatch
    say("study through --profile profiles/slurm")
    text = finish(snakemake(log="run1.log"), "run1.log")
    local = LOCAL_RULES | set(re.findall(r"^localrule (\w+):", text, flags=re.M))
    expected = {r: n for r, n in started_rules(text).items() if r not in local}
    if expected.get("search_worker") != 2:
        fail(f"expected two search_worker jobs, snakemake started {expected}")
    ran = collections.Counter(rule for jobid, rule, state in sacct()
                              if state == "COMPLETED" and jobid not in earlier)
    if ran != expected:
        fail(f"sacct's completed jobs per rule {dict(ran)} != the jobs planned {expected}")
    say(f"sacct: {sum(ran.values())} jobs, all COMPLETED, per rule {dict(ran)}")
    for name in ["summary.csv", "pareto.png", "pareto.svg"]:
        if not (STUDY / name).stat().st_size:
            fail(f"{STUDY / name} is empty")
    summary = (STUDY / "summary.csv").read_text()
    found = (STUDY / "search" / "found.yaml").read_text()
    names = re.findall(r"^  (found\.\S+):$", found, flags=re.M)
    if not all(f"\n{name}," in summary for name in names):
        fail(f"the search's found points {names} are not in summary.csv")
    say(f"search: two workers, found {names or 'nothing'}")
    if "workflow specific profile" in text:
        fail("profiles/local (or a profiles/default) was applied on top of profiles/slurm")

    # 3. nothing to do
    text = finish(snakemake("-n", log="rerun.log"), "rerun.log")
    if "Nothing to be done" not in text:
        fail(f"a rerun has jobs to do:\n{text[-3000:]}")
    say("rerun: nothing to be done")

    # 4. one evaluation redone, its job killed while it runs: the profile retries it
    before = {jobid for jobid, _, _ in sacct()}
    shard = STUDY.relative_to(WORK) / "points" / "full" / "shards" / "0.jsonl"
    proc = snakemake("--forcerun", str(shard), log="retry.log")
    killed = None
    for _ in range(300):
        running = subprocess.run(["squeue", "-h", "-t", "RUNNING", "-o", "%i %k"],
                                 capture_output=True, text=True).stdout.split()
        if len(running) == 2 and running[1].startswith("rule_evaluate"):
            killed = running[0]
            time.sleep(2)  # mid-run: snakemake's job step has started
            subprocess.run(["scancel", killed], check=True)
            say(f"scancel'ed evaluate job {killed} while it ran")
            break
        if proc.poll() is not None:
            break
        time.sleep(0.5)
    if killed is None:
        proc.kill()
        fail("never saw the evaluate job running")
    finish(proc, "retry.log")
    new = [(j, r, s) for j, r, s in sacct() if j not in before]
    states = [(r, s) for j, r, s in new if r == "evaluate"]
    if states[:1] != [("evaluate", "CANCELLED")] or ("evaluate", "COMPLETED") not in states:
        fail(f"expected the evaluate job CANCELLED then a retry COMPLETED, sacct says {new}")
    say(f"retry: evaluate jobs {[f'{j} {s}' for j, r, s in new if r == 'evaluate']}")
    if (STUDY / "summary.csv").read_text() != summary:
        fail("summary.csv after the retried run differs from the first run's")
    say("summary.csv identical after the retry")
    say(f"passed in {time.time() - start:.0f} s ({len(before - earlier) + len(new)} SLURM jobs)")


if __name__ == "__main__":
    main()
