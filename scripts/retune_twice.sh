#!/usr/bin/env bash
# A checkpoint retuned twice, for auditing lineage: the demo grows version 1 from the base, then
# two `mine` runs continue from versions 1 and 2 on larger human-labelled samples; ends by
# printing `falconer lineage` of version 3. Short fine-tunes (--epochs 3): this shows lineage,
# not accuracy. State goes to $FALCONER_HOME (default: a new temporary folder).
#   ./run.sh setup && scripts/retune_twice.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export FALCONER_HOME=${FALCONER_HOME:-$(mktemp -d -t falconer-lineage-XXXX)}
falconer=.venv/bin/falconer
corpus=falconer_core/data/demo_tweets.csv
plan=falconer_core/data/demo_plan.yaml
$falconer demo --sample-fraction 0.1 --epochs 3 --records 2
for parent in 1 2; do
  $falconer mine --plan $plan --corpus $corpus --id-column id --annotator gold \
    --parent "falconer-metamodel/$parent" --sample-fraction "0.$((parent * 5 + 10))" --epochs 3 --records 2
done
$falconer lineage falconer-metamodel/3
echo "state: $FALCONER_HOME"
