#!/usr/bin/env bash
# Makes (once) a Python virtual environment with boto3, for the test that runs the original's AWS
# scripts against FaceReko's Rekognition-compatible endpoint. Prints the environment's python.
# Test tooling only: FaceReko itself never runs Python at run time.
set -euo pipefail

venv="${FACEREKO_VENV:-$HOME/.cache/facereko-venv}"
# Pinned so every run tests against the same client.
boto3_version="1.44.8"

if ! "$venv/bin/python" -c "import boto3, sys; sys.exit(boto3.__version__ != '$boto3_version')" 2>/dev/null; then
    python3 -m venv "$venv" >&2
    "$venv/bin/pip" install -q --disable-pip-version-check --only-binary=:all: "boto3==$boto3_version" >&2
fi
echo "$venv/bin/python"
