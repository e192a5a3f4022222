#!/usr/bin/env bash
# The relabel loop's gain on MNIST with 100 hand labels (issue 15, part 3): a scripted user
# labels 100 more members chosen (a) from the suggestion queue, (b) at random, (c) not at all;
# pseudo-labels are spread again and training continues; members nobody labelled are scored.
# Sized for 2 CPU cores (~7 minutes per seed on the 60K set); options go to loop_gain.rs,
# e.g. --split t10k --seeds 0 for a quick run, --epochs 2 --budget 100 --hand 100.
set -euo pipefail
cd "$(dirname "$0")/.."
mnist="${MNIST_DIR:-../shared/datasets/mnist}"
exec cargo run --release --example loop_gain -- --mnist "$mnist" "$@"
