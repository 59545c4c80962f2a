#!/usr/bin/env bash
# Set up and run Fabulist on a fresh Debian machine with Python 3.11.
#
#   ./quickstart.sh demo   # the main job: a fable from the embedded model, then 100,000 fables ->
#                          # a small model -> INT4 export -> a fable from it
#   ./quickstart.sh test   # lint and the whole test suite (slow and integration tests included)
#
# Both create .venv on first use and install the pinned dependencies (constraints.txt); later runs
# reinstall only when pyproject.toml or constraints.txt changed.
set -euo pipefail
cd "$(dirname "$0")"

VENV=.venv
EXTRAS="data,train,export,runtime,serve,dev"

python_311() {
  for py in python3.11 python3; do
    if command -v "$py" >/dev/null && "$py" -c 'import sys; sys.exit(sys.version_info[:2] < (3, 11))'; then
      echo "$py"; return
    fi
  done
  echo "quickstart: Python 3.11 or newer is needed (apt-get install python3)" >&2; exit 1
}

setup() {
  local stamp
  stamp=$(cat pyproject.toml constraints.txt | sha256sum | cut -d' ' -f1)
  if [[ -f $VENV/.stamp && $(cat $VENV/.stamp) == "$stamp-$EXTRAS" ]]; then return; fi
  local py; py=$(python_311)
  if ! "$py" -m venv --help >/dev/null 2>&1 || ! "$py" -c 'import ensurepip' 2>/dev/null; then
    # Debian splits venv out of the interpreter package.
    if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
      apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null
    else
      echo "quickstart: install python3-venv first (sudo apt-get install python3-venv)" >&2; exit 1
    fi
  fi
  [[ -x $VENV/bin/python ]] || "$py" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip
  "$VENV/bin/python" -m pip install -q -c constraints.txt -e ".[$EXTRAS]"
  echo "$stamp-$EXTRAS" > "$VENV/.stamp"
}

demo() {
  local out=out/demo fab=$VENV/bin/fabulist
  mkdir -p "$out"
  # First, a fable from the model that ships in the package (fable-5m, INT4), offline, random elements.
  "$fab" generate --stats
  echo
  # Then the whole path on this machine, in minutes: data -> a small model -> INT4 export -> a fable.
  # Stage 1: 100,000 prompts -> 100,000 fables (offline procedural teacher) -> stats -> train/valid split.
  "$fab" data prompts --count 100000 --seed 0 -o "$out/prompts.jsonl"
  "$fab" data generate --prompts "$out/prompts.jsonl" -o "$out/fables.jsonl" --teacher procedural
  "$fab" data stats "$out/fables.jsonl" --plot "$out/lengths.png"
  [[ -f $out/split/split.json ]] || "$fab" data split "$out/fables.jsonl" --out "$out/split"
  # Stage 2: a small model (fable-1m) for a few minutes of this machine; rerunning resumes it. Context 512
  # holds a whole fable (250-400 tokens) with its header: at 256 nearly every fable would be cut in two.
  local resume=(); [[ -f $out/run/run.json ]] && resume=(--resume)
  "$fab" train --preset fable-1m --data "$out/split/train.parquet" --valid "$out/split/valid.parquet" \
    --out "$out/run" --context 512 --batch-size 12 --max-steps 300 --lr 3e-3 --warmup-steps 30 \
    --eval-every 100 --save-every 100 "${resume[@]}"
  # Stage 3: INT4 ONNX + 4-bit GGUF, each validated against PyTorch, sized against a 6 GB budget.
  "$fab" export "$out/run" --quant int4
  # Stage 4: a fable from the torch-free runtime (onnxruntime-genai's graph, INT4), streamed.
  echo
  "$fab" generate --model "$out/run" --quant int4 --character fox --moral "Kindness is rewarded." \
    --seed 0 --max-new-tokens 300 --stats
  echo
  echo "Loss curve: out/demo/run/loss.png; data histogram: out/demo/lengths.png;"
  echo "artifacts and their validation: out/demo/run/export_manifest.json"
}

# The mobile demo's tests (tests/android) drive Debian's chromium and build an APK with Debian's Android tools;
# the web app's JavaScript comes from npm (android-demo/package-lock.json); qemu-user runs the INT8 test on an
# emulated CPU without VNNI (tests/runtime/test_int8_precision.py). Installed once, skipped after.
demo_setup() {
  local pkgs=() cmd
  declare -A from=([chromium]=chromium [smali]=libsmali-java [aapt]=aapt [zipalign]=zipalign
                   [apksigner]=apksigner [dexdump]=dexdump [keytool]=default-jre-headless [node]="nodejs npm"
                   [qemu-x86_64]=qemu-user)  # qemu: INT8 on an emulated AVX2-only CPU (tests/runtime)
  for cmd in "${!from[@]}"; do command -v "$cmd" >/dev/null || pkgs+=(${from[$cmd]}); done
  [[ -f /usr/share/android-framework-res/framework-res.apk ]] || pkgs+=(android-framework-res)
  if [[ ${#pkgs[@]} -gt 0 ]]; then
    if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
      apt-get update -qq
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
    else
      echo "quickstart: the mobile demo tests need: sudo apt-get install ${pkgs[*]}" >&2; exit 1
    fi
  fi
  local stamp; stamp=$(sha256sum android-demo/package-lock.json | cut -d' ' -f1)
  if [[ $(cat android-demo/node_modules/.stamp 2>/dev/null) != "$stamp" ]]; then
    # onnxruntime-node (a dependency of transformers.js, unused here) would fetch extra binaries at install
    (cd android-demo && ONNXRUNTIME_NODE_INSTALL=skip npm ci --no-audit --no-fund --loglevel=error)
    echo "$stamp" > android-demo/node_modules/.stamp
  fi
}

tests() {
  "$VENV/bin/ruff" check .
  "$VENV/bin/ruff" format --check .
  "$VENV/bin/python" -m pytest "$@"
}

case "${1:-}" in
  demo) setup; demo ;;
  test) shift; setup; demo_setup; tests "$@" ;;
  *) echo "usage: ./quickstart.sh demo | test" >&2; exit 2 ;;
esac
