#!/usr/bin/env bash
# The model card as the MLflow UI shows it: a home with one registered version, `mlflow server`
# on 127.0.0.1, headless Chromium (apt-get install chromium) takes docs/model-card.png, the server stops.
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 DO_NOT_TRACK=true MLFLOW_DISABLE_TELEMETRY=true MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false \
  PYTHONPATH=$PWD
work=$(mktemp -d)
.venv/bin/python scripts/card_home.py "$work/home"
.venv/bin/mlflow server --backend-store-uri "sqlite:///$work/home/mlflow.db" --host 127.0.0.1 --port 5077 \
  --workers 1 > "$work/mlflow.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 60); do curl -sf -o /dev/null http://127.0.0.1:5077/ && break; sleep 1; done
chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking \
  --disable-component-update --disable-sync --user-data-dir="$work/profile" --window-size=1400,2200 \
  --virtual-time-budget=25000 --screenshot=docs/model-card.png \
  "http://127.0.0.1:5077/#/models/falconer-metamodel/versions/1"
