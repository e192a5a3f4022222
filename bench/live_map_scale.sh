#!/usr/bin/env bash
# The live map of a 135,000 × 160 × 224 ensemble: writes the file with stream_memory (which
# also checks streaming it in 2 GB), runs bench/live_map_scale.rs on it (subsample, the
# trainer's latent pass for the map, first and warm-started UMAP, peak memory), deletes it.
# Options go to live_map_scale (e.g. --sample 20000).
set -euo pipefail
cd "$(dirname "$0")/.."
dir="${CARGO_TARGET_DIR:-/var/tmp}"
file="$dir/sense-stream-memory-135000x160x224.npy"
trap 'rm -f "$file"' EXIT
cargo run --release --example stream_memory -- --keep --reuse --dir "$dir"
cargo run --release --example live_map_scale -- --data "$file" "$@"
