#!/usr/bin/env bash
# UMAP against umap-learn 0.5.12 on the same inputs (MNIST-10K×784 and a 30K×256 latent-like
# matrix, PCA-256 of MNIST train), then the warm-start time and drift. See
# bench/umap_vs_umap_learn.py for what is measured.
#
#   bench/umap_vs_umap_learn.sh [--mnist DIR] [--seeds 0,1,2] [--json]
#
# umap-learn, scikit-learn and scipy go into a cached venv ($SENSE_REF_VENV, default
# /var/tmp/sense-ref-venv), installed on the first run only. The Rust side is `sense embed`
# (built here); $SENSE_EMBED overrides the command (it must take `sense embed`'s arguments).
set -euo pipefail
cd "$(dirname "$0")/.."

venv="${SENSE_REF_VENV:-/var/tmp/sense-ref-venv}"
if ! "$venv/bin/python" -c "import umap, sklearn, scipy" 2>/dev/null; then
    echo "installing umap-learn into $venv (first run only)" >&2
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet "umap-learn==0.5.12" scikit-learn scipy numpy
fi

if [[ -z "${SENSE_EMBED:-}" ]]; then
    cargo build --release --quiet --bin sense
    SENSE_EMBED="${CARGO_TARGET_DIR:-target}/release/sense embed"
fi

echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)" >&2
"$venv/bin/python" bench/umap_vs_umap_learn.py --sense "$SENSE_EMBED" "$@"
