# Fresh machine: `make demo` (offline demo study) and `make test` do all set-up themselves.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
SNAKE  := $(VENV)/bin/snakemake
CORES  ?= all
# The lock the venv is installed from, hashes required (docs/environment.md): locks/cpu.txt
# for the demo and the tests, locks/gpu.txt for the real study on a CUDA machine.
LOCK   ?= locks/cpu.txt
export NANOVLM_LOCK := $(LOCK)
# torch's CPU wheel is not on PyPI: the project's machines keep it in /opt/wheels, elsewhere
# it comes from PyTorch's own wheel page. The GPU lock takes PyPI's (CUDA) build.
TORCH_WHEELS ?= $(if $(wildcard /opt/wheels/torch-*.whl),/opt/wheels,https://download.pytorch.org/whl/torch/)
# `make lock` / `make lock-gpu`: uv, pinned, in a venv of its own (never in the locked one)
UV_VERSION ?= 0.13.9
LOCK_TOOLS ?= .venv-lock
UV     := $(LOCK_TOOLS)/bin/uv
# LOCK_FLAGS: more uv options, e.g. --find-links https://download.pytorch.org/whl/torch/ for
# another CUDA build named in locks/gpu.in (docs/environment.md)
LOCK_FLAGS ?=
UV_COMPILE = $(UV) pip compile pyproject.toml --extra test --generate-hashes \
	--python-version 3.11 --python-platform x86_64-manylinux_2_28 --quiet $(LOCK_FLAGS)
ifeq ($(origin TORCH),command line)
$(error TORCH= is gone: the venv installs from a lock. Pick torch in locks/cpu.in (or locks/gpu.in) and run `make lock` (`make lock-gpu`); on a GPU machine `make LOCK=locks/gpu.txt study`. See docs/environment.md)
endif
# pytest-xdist workers: most of the suite's time is Snakemake subprocesses, which overlap well
# (10.3 min serial, 6.0 min with 2 on 2 cores); each worker holds a torch process (~0.5 GB).
TEST_WORKERS ?= 2

.PHONY: venv demo demo-check test study report lint dry-run clean-demo rehearse lock lock-gpu

# Every dependency from the lock, exact versions, sha256 hashes required (pip refuses a file
# whose hash the lock lacks), then the package itself without dependencies. The venv keeps
# a copy of its lock: the results' environment block records its sha256 (environment.py).
# One stamp per lock (another LOCK= reinstalls; the old stamp goes, so switching back does too).
STAMP  := $(VENV)/.installed-$(notdir $(basename $(LOCK)))
$(STAMP): pyproject.toml $(LOCK)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	rm -f $(VENV)/.installed $(VENV)/.installed-*
	$(PY) -m pip install --quiet --upgrade pip
	@echo "venv: installing every dependency from $(LOCK) (exact versions, --require-hashes)"
	$(PY) -m pip install --quiet --require-hashes --no-deps --find-links $(TORCH_WHEELS) -r $(LOCK)
	$(PY) -m pip install --quiet --no-deps -e .
	cp $(LOCK) $(VENV)/nanovlm-lite-lock.txt
	$(PY) -m nanovlm_lite.environment check $(LOCK)
	touch $@

venv: $(STAMP)

test: venv
	$(PY) -m pytest -q -n $(TEST_WORKERS)

demo: venv
	$(SNAKE) --profile profiles/local --configfile config/demo.yaml --cores $(CORES)
	$(SNAKE) --profile profiles/local --configfile config/demo.yaml --report results/demo/report.html

# After `make demo` (here, on another machine, or with another seed's model): does it draw
# the conclusions the README quotes? benchmarks/demo_reference holds that run's summary.csv
# and recovery.csv; the digits may move, the signs, the slope and the marks must not.
demo-check: venv
	$(PY) benchmarks/compare_demo.py benchmarks/demo_reference results/demo

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

# The locks, regenerated from pyproject.toml's ranges (the newest releases within them today)
# plus locks/cpu.in (torch's CPU build) or locks/gpu.in (PyPI's CUDA torch, torchvision,
# einops); envs/*.yaml follow (the same versions, no hashes). Commit the result: a changed
# lock reruns the model rules.
$(UV):
	$(PYTHON) -m venv $(LOCK_TOOLS)
	$(LOCK_TOOLS)/bin/pip install --quiet uv==$(UV_VERSION)

lock: $(UV)
	$(UV_COMPILE) locks/cpu.in --find-links $(TORCH_WHEELS) --custom-compile-command 'make lock' -o locks/cpu.txt
	$(PYTHON) locks/write_conda_envs.py

lock-gpu: $(UV)
	$(UV_COMPILE) locks/gpu.in --custom-compile-command 'make lock-gpu' -o locks/gpu.txt
	$(PYTHON) locks/write_conda_envs.py

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
