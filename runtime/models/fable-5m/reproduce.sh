#!/usr/bin/env bash
# Reproduce the embedded default model fable-5m (v2.2) from a clone of Fabulist with its history (run from the
# repository root after `./quickstart.sh test` has set up .venv). v2 continues v1 (the first fable-5m,
# 20.5M tokens of fixed 512-token blocks, commit 52c23ba) with whole fables per row and the loss on the story:
# first the recipe A/B (benchmarks/fable_quality_ab.py, three arms of 2.05M tokens each from v1), then the
# winning arm continued for MAX_TOKENS more (v2), then MORE_TOKENS more at half the learning rate (v2.1), then
# LAST_TOKENS more in 14-row batches (v2.2, the shipped model: 8-row batches of whole fables had flattened the
# tail of the name distribution, benchmarks/name_probe.py). About 4 h on 2 CPU cores (data 5 min, the A/B
# 3 x 25 min, v2 45 min, v2.1 40 min, v2.2 45 min, export and quality 10 min); every training step resumes
# where it stopped when rerun.
set -euo pipefail
F=.venv/bin/fabulist
W=${1:-out/default}
MAX_TOKENS=${MAX_TOKENS:-7000000}
MORE_TOKENS=${MORE_TOKENS:-6000000}
LAST_TOKENS=${LAST_TOKENS:-6000000}
mkdir -p "$W"
# Data: 300,000 training-region prompts (seed 1) -> 300,000 procedural fables -> dedup + train/valid split.
$F data prompts --count 300000 --seed 1 -o "$W/prompts.jsonl"
# procedural-v1: the grammar this corpus was written with (the default teacher is v2 since).
$F data generate --prompts "$W/prompts.jsonl" -o "$W/fables.jsonl" --teacher procedural-v1
[[ -f $W/split/split.json ]] || $F data split "$W/fables.jsonl" --out "$W/split"
# The start: fable-5m v1 as it shipped (config, tokenizer, Q4_K_M GGUF), from the repository's history.
[[ -d $W/v1 ]] || { mkdir -p "$W/v1" && git archive 52c23ba runtime/models/fable-5m | tar -x -C "$W/v1"; }
# The A/B: v1 rebuilt in fp32 from its GGUF, continued 2.05M tokens with each recipe, each arm scored.
.venv/bin/python benchmarks/fable_quality_ab.py --split "$W/split" --out "$W/ab" --start "$W/v1/runtime/models/fable-5m"
# v2: the winning arm (docs-story) continued with the same recipe for MAX_TOKENS tokens.
resume=(); [[ -f $W/run/run.json ]] && resume=(--resume)
$F train --preset fable-5m --init "$W/ab/docs-story" --data "$W/split/train.parquet" --valid "$W/split/valid.parquet" \
  --out "$W/run" --context 512 --batch-size 8 --max-tokens "$MAX_TOKENS" --lr 6e-4 --warmup-steps 50 \
  --eval-every 250 --save-every 100 --seed 0 --compile --packing docs --loss-on story "${resume[@]}"
# v2.1: v2 continued MORE_TOKENS more at half the peak learning rate (another data order, seed 1).
resume=(); [[ -f $W/run3/run.json ]] && resume=(--resume)
$F train --preset fable-5m --init "$W/run" --data "$W/split/train.parquet" --valid "$W/split/valid.parquet" \
  --out "$W/run3" --context 512 --batch-size 8 --max-tokens "$MORE_TOKENS" --lr 3e-4 --warmup-steps 50 \
  --eval-every 250 --save-every 100 --seed 1 --compile --packing docs --loss-on story "${resume[@]}"
# v2.2: v2.1 continued LAST_TOKENS more with 14 fables per step instead of 8 (another data order, seed 2).
resume=(); [[ -f $W/run4/run.json ]] && resume=(--resume)
$F train --preset fable-5m --init "$W/run3" --data "$W/split/train.parquet" --valid "$W/split/valid.parquet" \
  --out "$W/run4" --context 512 --batch-size 14 --max-tokens "$LAST_TOKENS" --lr 3e-4 --warmup-steps 50 \
  --eval-every 250 --save-every 100 --seed 2 --compile --packing docs --loss-on story "${resume[@]}"
# Export: every format and quantization, each validated against PyTorch (the card lists them all).
$F export "$W/run4" --quant all
# The browser's graph (the mobile demo's default): onnxruntime-genai's builder graph with int8 weights that
# onnxruntime folds back to fp32 at load (export/web.py).
$F export "$W/run4" --format onnx --quant int8 --method fold
# Quality bar: 200 evaluation-region prompts, one fable each at T=0.8, INT4 against fp32.
$F eval quality --model "$W/run4" --quant int4,fp32 -n 200 --temperature 0.8 --seed 0 --json "$W/quality.json"
# The browser table: every ONNX precision in headless Chromium on the demo's runtime (a quiet machine).
.venv/bin/python benchmarks/web_precision.py "$W/run4" --repeats 5
# Pack the shipped artifacts with this card into the runtime package.
$F models pack "$W/run4" --name fable-5m --quality "$W/quality.json" --reproduce "$0" --dest runtime/models \
  --browser benchmarks/results/web_precision.json
