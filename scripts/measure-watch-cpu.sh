#!/usr/bin/env bash
# Average CPU of `facereko serve --simulate` (card+face, local onnx engine, armed) while the simulated
# camera plays a 640x480 stream at 5 frames/s: an empty corridor, then a face in view, then with
# continuous capture off (vision.fps = 0) for comparison. CPU is read from /proc/PID/stat (user + system
# time) over SECONDS (default 60) per scene, as a share of one core.
#
#   scripts/measure-watch-cpu.sh [BINARY] [SECONDS]
#
# BINARY defaults to the release build. The models come from FACEREKO_MODELS_DIR (as `scripts/test.sh`
# installs them), the face from the development photos (FACEREKO_FACES_DIR).
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${1:-${CARGO_TARGET_DIR:-target}/release/facereko}"
seconds="${2:-60}"
faces="${FACEREKO_FACES_DIR:-$(cd .. && pwd)/shared/faces}"
models="${FACEREKO_MODELS_DIR:-$HOME/.cache/facereko-models}"
[ -x "$bin" ] || { echo "no binary at $bin (cargo build --release -p facereko)" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# Ten 640x480 frames each: the background alone, and an LFW face (320 px) drifting on it.
photo="$faces/lfw-dev/Adam_Sandler/02.jpg"
cargo run -q --release -p facereko-door --example stream_frames -- "$photo" "$work/face"
cargo run -q --release -p facereko-door --example stream_frames -- "$photo" "$work/empty" --empty

ticks=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

run() { # fps scene
    local fps=$1 scene=$2 data="$work/data-$1-$2"
    mkdir -p "$data"
    cat > "$data/facereko.toml" <<TOML
[vision]
models_dir = "$models"
fps = $fps
[web]
bind = "127.0.0.1:0"
TOML
    FACEREKO_LOG=warn "$bin" --data-dir "$data" enrol --name "Adam" \
        --image "$faces/lfw-dev/Adam_Sandler/01.jpg" --card 04:A2:2B:19 >/dev/null
    FACEREKO_LOG=warn OPENBLAS_NUM_THREADS=1 "$bin" --data-dir "$data" serve --simulate \
        --mode card+face >"$data/serve.log" 2>&1 &
    local pid=$!
    for _ in $(seq 1 300); do
        "$bin" --data-dir "$data" status >/dev/null 2>&1 && break
        sleep 0.1
    done
    "$bin" --data-dir "$data" sim stream "$work/$scene" --fps 5 --loop >/dev/null
    sleep 5 # settle: models warm, first frames analysed
    local t0 c0 t1 c1
    t0=$(date +%s.%N)
    c0=$(cpu_ticks "$pid")
    sleep "$seconds"
    t1=$(date +%s.%N)
    c1=$(cpu_ticks "$pid")
    kill -TERM "$pid"
    wait "$pid" || true
    awk -v c="$((c1 - c0))" -v hz="$ticks" -v t0="$t0" -v t1="$t1" -v fps="$fps" -v s="$scene" \
        'BEGIN { printf "vision.fps = %s, %s scene: %.1f %% of one core\n", fps, s, 100 * c / hz / (t1 - t0) }'
}

run 5 empty
run 5 face
run 0 face
