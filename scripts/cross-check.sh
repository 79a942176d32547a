#!/usr/bin/env bash
# Checks that the whole workspace builds for a 64-bit Raspberry Pi (aarch64-unknown-linux-gnu).
# Installs the Rust target and Debian's cross compilers when missing. `cargo check` compiles every crate,
# C++ glue included, for the target (the ONNX engine loads ONNX Runtime at run time, so it needs no arm64
# library to build); linking the final binary would also need arm64 dlib/OpenBLAS libraries.
# Then prepares an aarch64 models folder with this machine's `facereko models install --arch aarch64`,
# which fetches the aarch64 ONNX Runtime wheel and verifies its library's checksum (kept between runs).
set -euo pipefail
cd "$(dirname "$0")/.."

target=aarch64-unknown-linux-gnu
if ! rustup target list --installed 2>/dev/null | grep -qx "$target"; then
    rustup target add "$target"
fi
missing=()
for p in gcc-aarch64-linux-gnu g++-aarch64-linux-gnu; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    sudo_cmd=()
    if [ "$(id -u)" -ne 0 ]; then sudo_cmd=(sudo); fi
    DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq "${missing[@]}"
fi
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc
export CXX_aarch64_unknown_linux_gnu=aarch64-linux-gnu-g++
cargo check --workspace --all-targets --target "$target"
FACEREKO_AARCH64_MODELS_DIR="${FACEREKO_AARCH64_MODELS_DIR:-$HOME/.cache/facereko-models-aarch64}"
cargo run -q -p facereko -- models install --engine onnx --arch aarch64 --dir "$FACEREKO_AARCH64_MODELS_DIR"
