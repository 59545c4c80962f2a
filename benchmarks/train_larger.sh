#!/usr/bin/env bash
# Train the models that the quantization table (issue 21) and speculative decoding (issue 22) need beside the
# shipped fable-5m: a larger target (fable-15m) and a small draft (fable-1m), both on the shipped fable-5m's
# tokenizer so that all three share one vocabulary (a draft must share its target's tokenizer).
# Run from the repository root after `./quickstart.sh test` has set up .venv:
#   benchmarks/train_larger.sh SPLIT_DIR OUT_DIR
# SPLIT_DIR holds train.parquet and valid.parquet (runtime/models/fable-5m/reproduce.sh makes them). Rerun the
# same command to resume: each run continues from its latest checkpoint. Budgets: TARGET_TOKENS, DRAFT_TOKENS.
# On 2 CPU cores: fable-15m ~1,000 tokens/s, fable-1m ~8,000 tokens/s.
set -euo pipefail
F=.venv/bin/fabulist
SPLIT=${1:?usage: benchmarks/train_larger.sh SPLIT_DIR OUT_DIR}
W=${2:?usage: benchmarks/train_larger.sh SPLIT_DIR OUT_DIR}
TOK=runtime/models/fable-5m/tokenizer.json
mkdir -p "$W"
train() {  # preset out tokens lr batch
  local resume=(); [[ -f $W/$2/run.json ]] && resume=(--resume)
  $F train --preset "$1" --tokenizer "$TOK" --data "$SPLIT/train.parquet" --valid "$SPLIT/valid.parquet" \
    --out "$W/$2" --context 512 --batch-size "$5" --max-tokens "$3" --lr "$4" --warmup-steps 50 \
    --eval-every 200 --save-every 50 --seed 0 --compile --packing docs --loss-on story "${resume[@]}"
}
train fable-15m fable-15m "${TARGET_TOKENS:-4000000}" 1e-3 16
train fable-1m fable-1m "${DRAFT_TOKENS:-4000000}" 3e-3 16
# Every format, each validated against PyTorch.
for m in fable-15m fable-1m; do
  [[ -f $W/$m/export_manifest.json ]] || $F export "$W/$m" --quant all
done
# The measurements made from them (a quiet machine; results under benchmarks/results/):
#   .venv/bin/python benchmarks/web_precision.py "$W/fable-15m" --repeats 5 --out benchmarks/results/fable-15m
#   .venv/bin/python benchmarks/quant_methods.py "$W/fable-15m" --out benchmarks/results/fable-15m
#   .venv/bin/python benchmarks/gguf_imatrix.py "$W/fable-15m" --out benchmarks/results/fable-15m
#   .venv/bin/fabulist eval quality --model "$W/fable-15m" --quant int4,fp32 --graph optimum -n 100 \
#     --temperature 0.8 --seed 0 --json benchmarks/results/fable-15m/quality.json
#   for T in "$W/fable-15m" FABLE5M_RUN; do for F in "onnx fp32" "gguf q8_0"; do set -- $F
#     .venv/bin/python benchmarks/speculative.py "$T" "$W/fable-1m" --format $1 --quant $2 --k 2,4 --threads 2 \
#       --tokens 128 --prompts 4 --json benchmarks/results/speculative/$(basename "$T")-$1-$2.json; done; done
