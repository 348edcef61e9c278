#!/usr/bin/env bash
# The measurements in benchmarks/README.md: each run waits for a quiet machine first
# (benchmarks/when_quiet.py), then runs `nanovlm-lite bench` and keeps its JSON; a run
# during which other processes kept more than 0.1 cores busy is repeated (up to TRIES).
#   bash benchmarks/sweep.sh OUT_DIR [variant ...]   (variants: b4 b8 b4-nomalloc b4-compile b4-1thread)
set -u
out=${1:-benchmarks/results}; shift || true
mkdir -p "$out"
py=${PYTHON:-.venv/bin/python}
common=(--model nanovlm-460m --random --config config/config.yaml --point global-512 --baseline --json)
run() {  # name, env, bench args...
  local name=$1 envs=$2; shift 2
  for try in $(seq 1 "${TRIES:-5}"); do
    echo "== $name (try $try)" >&2
    env $envs "$py" benchmarks/when_quiet.py --below 0.2 --window 10 --max-wait "${MAX_WAIT:-1800}" -- \
      "${NANOVLM_LITE:-.venv/bin/nanovlm-lite}" bench "${common[@]}" "$@" > "$out/$name.json" 2> "$out/$name.err"
    cp "$out/$name.json" "$out/$name.try$try.json"
    "$py" -c "import json,sys; sys.exit(json.load(open('$out/$name.json'))['background_load_cores'] > 0.1)" && return
  done
}
variants=${*:-b4 b8 b4-nomalloc}
for v in $variants; do
  case $v in
    b4) run b4 "" --questions 8 --batch-size 4 ;;
    b8) run b8 "" --questions 16 --batch-size 8 ;;
    b4-nomalloc) run b4-nomalloc "NANOVLM_LITE_MALLOC_TUNING=0" --questions 8 --batch-size 4 ;;
    b4-compile) run b4-compile "" --questions 8 --batch-size 4 --compile ;;
    b4-1thread) run b4-1thread "" --questions 8 --batch-size 4 --threads 1 ;;
    *) echo "unknown variant $v" >&2 ;;
  esac
done
