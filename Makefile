# Fresh machine: `make demo` (offline demo study) and `make test` do all set-up themselves.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
SNAKE  := $(VENV)/bin/snakemake
CORES  ?= all
TORCH  ?= torch==2.13.0
# pytest-xdist workers: most of the suite's time is Snakemake subprocesses, which overlap well
# (10.3 min serial, 6.0 min with 2 on 2 cores); each worker holds a torch process (~0.5 GB).
TEST_WORKERS ?= 2

.PHONY: venv demo test study report lint dry-run clean-demo rehearse

# torch first, from the pinned CPU wheel: a bare `torch` requirement would pull a
# multi-GB CUDA build. The package's own range (torch>=2.4) is then already satisfied.
$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(TORCH)
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

venv: $(VENV)/.installed

test: venv
	$(PY) -m pytest -q -n $(TEST_WORKERS)

demo: venv
	$(SNAKE) --profile profiles/local --configfile config/demo.yaml --cores $(CORES)
	$(SNAKE) --profile profiles/local --configfile config/demo.yaml --report results/demo/report.html

# The real study: needs the model hub and, to finish in hours, a GPU. torchvision (and
# einops) only for upstream nanoVLM's own code in the parity rule: the torchvision release
# matching the installed torch, --no-deps, so torch is never replaced.
study: venv
	$(PY) -m nanovlm_lite.upstream_env install
	$(SNAKE) --profile profiles/local --configfile config/config.yaml --cores $(CORES)
	$(SNAKE) --profile profiles/local --configfile config/config.yaml --report results/aokvqa/report.html

# The real study (config/config.yaml unchanged) end to end against local stand-ins for
# GitHub and the hubs, in a temp dir, then checked (tests/rehearse.py); ~10 CPU-minutes.
rehearse: venv
	$(PY) tests/rehearse.py --cores 2

report: venv
	$(SNAKE) --profile profiles/local --configfile config/config.yaml --report results/aokvqa/report.html

lint: venv
	$(SNAKE) --lint --configfile config/config.yaml

dry-run: venv
	$(SNAKE) -n --configfile config/config.yaml --cores 1

# The sweep through profiles/slurm on a one-node SLURM cluster built here (root, Debian;
# .ci/slurm/cluster.sh installs and stops it): jobs in sacct, outputs, a rerun with
# nothing to do, a scancel'ed job retried.
.PHONY: slurm-smoke
slurm-smoke: venv
	.ci/slurm/cluster.sh run $(PY) .ci/slurm/smoke.py
