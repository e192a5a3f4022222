#!/usr/bin/env bash
# Streams a 135,000 × 160 × 224 u8 ensemble (4.8 GB, written to $CARGO_TARGET_DIR or
# /var/tmp and deleted afterwards) through the batch loader and checks peak resident memory
# against 2 GB. Options: --count N --height H --width W --dir DIR --keep --reuse --raw
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo run --release --example stream_memory -- "$@"
