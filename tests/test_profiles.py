"""The profiles mean what they say: `--profile profiles/slurm` alone (no local settings mixed
in), GPU rules on the GPU partition, memory and time from each study's own `resources:`."""
import re

import pytest
import yaml

from test_workflow import REPO, snakemake, workflow  # noqa: F401  (the fixture)

GPU_RULES = {"evaluate", "finetune", "parity", "train_demo_model", "teacher", "importance",
             "search_worker"}
LOCAL_RULES = {"clone_upstream", "download_model", "fetch_dataset", "check_points"}


def slurm_plan(root, *args):
    """(rule, resources dict) for every job of `snakemake --profile profiles/slurm -n`, and
    the whole output."""
    proc = snakemake(root, "-n", "--profile", "profiles/slurm", *args)
    out = proc.stdout + proc.stderr
    jobs = []
    for block in re.split(r"\n(?=(?:local)?rule \w+:)", out):
        m = re.match(r"(?:local)?rule (\w+):", block.strip())
        r = re.search(r"^\s+resources: (.*)$", block, re.M)
        if m and m.group(1) != "all":
            jobs.append((m.group(1), dict(kv.split("=", 1) for kv in r.group(1).split(", "))))
    return jobs, out


@pytest.mark.parametrize("configfile", ["config/config.yaml", "config/demo.yaml",
                                        str(REPO / ".ci" / "slurm" / "smoke.yaml")])
def test_slurm_profile_routes_and_sizes_every_rule(workflow, configfile):
    jobs, out = slurm_plan(workflow, "--configfile", configfile)
    study = yaml.safe_load((workflow / configfile).read_text())  # an absolute path stays one
    assert "workflow specific profile" not in out  # profiles/local is not applied on top
    assert "localrules directive" not in out
    assert {rule for rule, _ in jobs} >= {"evaluate", "merge", "flops", "aggregate", "pareto"}
    for rule, res in jobs:
        if rule in LOCAL_RULES:
            continue
        gpu = rule in GPU_RULES
        assert res["slurm_partition"] == ("gpu" if gpu else "cpu"), (rule, res)
        assert res.get("gpu") == ("1" if gpu else None), (rule, res)
        assert study["resources"][rule] == {"mem_mb": int(res["mem_mb"]),
                                            "runtime": int(res["runtime"])}, (rule, res)


def test_local_profile_runs_without_warnings(workflow):
    proc = snakemake(workflow, "-n", "--profile", "profiles/local", "--configfile",
                     "config/demo.yaml")
    out = proc.stdout + proc.stderr
    assert "Using profile profiles/local" in out
    assert "localrules directive" not in out and "Warning" not in out, out


def test_unknown_rule_in_resources_is_a_config_error(workflow):
    config = yaml.safe_load((workflow / "config" / "demo.yaml").read_text())
    config["resources"]["evalute"] = {"mem_mb": 1000}
    (workflow / "config" / "bad.yaml").write_text(yaml.safe_dump(config))
    proc = snakemake(workflow, "-n", "--configfile", "config/bad.yaml", check=False)
    assert proc.returncode != 0
    assert "config resources: 'evalute' is not one of" in proc.stdout + proc.stderr


def test_resources_section_comes_from_benchmark_files(tmp_path):
    import importlib.util
    spec = importlib.util.spec_from_file_location(
        "resources", REPO / "benchmarks" / "resources.py")
    resources = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(resources)
    header = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"
    for rel, s, rss in [("evaluate/full/0.tsv", 100.0, 700.0), ("evaluate/low/0.tsv", 30.0, 1234.5),
                        ("aggregate.tsv", 2.0, 80.0), ("fetch_dataset/val.tsv", 9.0, 50.0)]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(header + f"{s}\t0:00:00\t{rss}\t0\t0\t0\t0\t0\t0\t0\n")
    text = resources.section(resources.measured(tmp_path))
    section = yaml.safe_load(text)["resources"]
    # worst job x2 memory (rounded up to 100 MB, >= 1000), x3 time (minutes, >= 5)
    assert section == {"evaluate": {"mem_mb": 2500, "runtime": 5},
                       "aggregate": {"mem_mb": 1000, "runtime": 5}}
    assert resources.section({"train": (100.0, 600.0)}).endswith("runtime: 30}  "
                                                                  "# measured 100 MB, 600 s")
