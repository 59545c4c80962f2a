#!/usr/bin/env bash
# Reproduce the embedded default model fable-5m from a clone of Fabulist (run from the repository root
# after `./quickstart.sh test` has set up .venv). About 3 h on 2 CPU cores; the training step resumes
# where it stopped when rerun.
set -euo pipefail
F=.venv/bin/fabulist
W=${1:-out/default}
mkdir -p "$W"
# Data: 300,000 training-region prompts (seed 1) -> 300,000 procedural fables -> dedup + train/valid split.
$F data prompts --count 300000 --seed 1 -o "$W/prompts.jsonl"
$F data generate --prompts "$W/prompts.jsonl" -o "$W/fables.jsonl" --teacher procedural
[[ -f $W/split/split.json ]] || $F data split "$W/fables.jsonl" --out "$W/split"
# Train: fable-5m, context 512, 5,000 steps of 8 x 512 tokens (20.5M tokens), compiled step.
resume=(); [[ -f $W/run/run.json ]] && resume=(--resume)
$F train --preset fable-5m --data "$W/split/train.parquet" --valid "$W/split/valid.parquet" --out "$W/run" \
  --context 512 --batch-size 8 --max-steps 5000 --eval-every 250 --save-every 200 --seed 0 --compile "${resume[@]}"
# Export: every format and quantization, each validated against PyTorch (the card lists them all).
$F export "$W/run" --quant all
# Quality bar: 200 evaluation-region prompts, one fable each at T=0.8, INT4 against fp32.
$F eval quality --model "$W/run" --quant int4,fp32 -n 200 --temperature 0.8 --seed 0 --json "$W/quality.json"
# Pack the shipped artifacts with this card into the runtime package.
$F models pack "$W/run" --name fable-5m --quality "$W/quality.json" --reproduce "$0" --dest runtime/models
