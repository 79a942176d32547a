#!/usr/bin/env bash
# Runs every FaceReko test, including those that need real services (MariaDB, PostgreSQL, Mosquitto),
# real face-model weights and Debian's Chromium. Installs/starts what is missing first.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/system-deps.sh --test
scripts/services.sh

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/facereko-target}"
export FACEREKO_MODELS_DIR="${FACEREKO_MODELS_DIR:-$HOME/.cache/facereko-models}"
export FACEREKO_FACES_DIR="${FACEREKO_FACES_DIR:-$(cd .. && pwd)/shared/faces}"
export FACEREKO_TEST_MYSQL_URL="${FACEREKO_TEST_MYSQL_URL:-mysql://root@127.0.0.1:3306/test}"
export FACEREKO_TEST_POSTGRES_URL="${FACEREKO_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}"
export FACEREKO_TEST_MQTT_URL="${FACEREKO_TEST_MQTT_URL:-mqtt://127.0.0.1:1883}"
export FACEREKO_CHROMEDRIVER="${FACEREKO_CHROMEDRIVER:-/usr/bin/chromedriver}"
# One BLAS thread per process: faster on a busy 2-core machine, and tests run in parallel anyway.
export OPENBLAS_NUM_THREADS="${OPENBLAS_NUM_THREADS:-1}"

# boto3, for the test that runs the original's AWS scripts against the Rekognition-compatible endpoint.
export FACEREKO_TEST_PYTHON="${FACEREKO_TEST_PYTHON:-$(scripts/boto3-venv.sh)}"

# Both local engines' face models (checksum-verified; kept between runs, so a no-op once there).
cargo run -q -p facereko -- models install --engine all --dir "$FACEREKO_MODELS_DIR"

# The default build (no AWS SDK): every test. The one test that needs a USB webcam runs only when
# FACEREKO_TEST_V4L2_DEVICE names one (a machine without V4L2, like a CI container, has none to offer).
skip=()
[ -n "${FACEREKO_TEST_V4L2_DEVICE:-}" ] || skip=(--skip a_real_webcam_gives_fresh_whole_jpegs)
cargo test --workspace -- --include-ignored "${skip[@]}" "$@"

# The `aws` feature (AWS SDK): the tests that differ with it. None of them reaches AWS: the SDK talks
# to FaceReko's own Rekognition-compatible endpoint and to hand-written stand-ins on loopback.
if [ $# -eq 0 ]; then
    cargo test -p facereko-aws --features sdk
    cargo test -p facereko-rekognition --features aws
    cargo test -p facereko-notify --features aws --test sns
    cargo test -p facereko --features aws --bins --test rekognition -- --include-ignored
fi
