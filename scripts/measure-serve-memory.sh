#!/usr/bin/env bash
# Resident memory of `facereko serve --simulate` per local face engine: after start, and after five
# recognitions of an enrolled face (card+face mode, the simulated camera showing that face).
#
#   scripts/measure-serve-memory.sh [BINARY] [PHOTO]
#
# BINARY defaults to the release build; PHOTO to an LFW photo from the development faces. The models come
# from FACEREKO_MODELS_DIR (as `scripts/test.sh` installs them). Prints one line per engine.
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${1:-${CARGO_TARGET_DIR:-target}/release/facereko}"
photo="${2:-${FACEREKO_FACES_DIR:-$(cd .. && pwd)/shared/faces}/lfw-dev/Aaron_Sorkin/01.jpg}"
models="${FACEREKO_MODELS_DIR:-$HOME/.cache/facereko-models}"
[ -x "$bin" ] || { echo "no binary at $bin (cargo build --release -p facereko)" >&2; exit 1; }

rss_mb() { awk '/^VmRSS/ {printf "%.0f", $2 / 1024}' "/proc/$1/status"; }

for engine in onnx dlib; do
    data=$(mktemp -d)
    cat > "$data/facereko.toml" <<TOML
[vision]
engine = "local"
local_engine = "$engine"
models_dir = "$models"
[sim]
camera = "$photo"
[web]
bind = "127.0.0.1:0"
TOML
    FACEREKO_LOG=warn "$bin" --data-dir "$data" enrol --name "Ada" --image "$photo" --card 04:A2:2B:19 >/dev/null
    FACEREKO_LOG=warn "$bin" --data-dir "$data" serve --simulate --mode card+face >"$data/serve.log" 2>&1 &
    pid=$!
    for _ in $(seq 1 300); do
        "$bin" --data-dir "$data" status >/dev/null 2>&1 && break
        sleep 0.1
    done
    sleep 1
    at_start=$(rss_mb "$pid")
    for i in 1 2 3 4 5; do
        "$bin" --data-dir "$data" sim tap 04:A2:2B:19 >/dev/null
        sleep 4 # the unlock time and the card's debounce
    done
    granted=$("$bin" --data-dir "$data" attempts list --json | grep -o '"outcome": *"granted"' | wc -l)
    after=$(rss_mb "$pid")
    kill -TERM "$pid"
    wait "$pid" || true
    echo "$engine: ${at_start} MB after start, ${after} MB after 5 taps ($granted granted)"
    rm -rf "$data"
done
