#!/usr/bin/env bash
# Training throughput of the paper AE: burn-flex (bench/train_throughput.rs) against PyTorch on
# the CPU (bench/torch_reference.py), back to back per size so both see the same machine load.
# PyTorch is installed once into a cached venv ($SENSE_TORCH_VENV, default
# /var/tmp/sense-torch-venv; the PyPI wheel brings its CUDA libraries, ~4 GB, unused here).
#
#   bench/train_throughput.sh [--sizes 28x28:128,50x50:128,160x224:32] [--steps 20]
#                             [--warmup 3] [--threads N] [--ops] [--conv lowered|burn]
# --threads: threads for both (rayon for burn, intra-op for torch); default all cores. With 1,
# the comparison is of kernels alone, and a busy machine distorts it least.
# --conv: burn-flex's own convolution kernels (burn) or ours (lowered, the default).
set -euo pipefail
cd "$(dirname "$0")/.."

sizes="28x28:128,50x50:128,160x224:32"
steps=20
warmup=3
ops=()
conv=lowered
threads=$(nproc)
while (($#)); do
    case "$1" in
        --sizes) sizes="$2"; shift 2 ;;
        --steps) steps="$2"; shift 2 ;;
        --warmup) warmup="$2"; shift 2 ;;
        --threads) threads="$2"; shift 2 ;;
        --ops) ops=(--ops); shift ;;
        --conv) conv="$2"; shift 2 ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
done

venv="${SENSE_TORCH_VENV:-/var/tmp/sense-torch-venv}"
if ! "$venv/bin/python" -c "import torch" 2>/dev/null; then
    echo "installing PyTorch into $venv (first run only)" >&2
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet torch numpy
fi
py="$venv/bin/python"

cargo build --release --quiet --example train_throughput
target="${CARGO_TARGET_DIR:-target}"
burn_bin="$target/release/examples/train_throughput"

echo "machine: $(nproc) cores, $threads threads each; CPU convs: $conv; $(uname -m); torch $("$py" -c 'import torch; print(torch.__version__)')"
results=$(mktemp)
trap 'rm -f "$results"' EXIT
for case in ${sizes//,/ }; do
    load=$(cut -d' ' -f1 /proc/loadavg)
    echo "== $case (load average before: $load)" >&2
    "$py" bench/torch_reference.py --sizes "$case" --steps "$steps" --warmup "$warmup" \
        --threads "$threads" "${ops[@]}" | tee -a "$results" >&2
    RAYON_NUM_THREADS="$threads" "$burn_bin" --sizes "$case" --steps "$steps" --warmup "$warmup" --json --conv "$conv" "${ops[@]}" \
        | tee -a "$results" >&2
    echo "{\"load\": $load, \"size\": \"${case%%:*}\"}" >> "$results"
done

"$py" - "$results" <<'PY'
import json, sys
rows = {}
for line in open(sys.argv[1]):
    line = line.strip()
    if not line.startswith("{"):
        continue
    r = json.loads(line)
    row = rows.setdefault(r["size"], {})
    if "load" in r:
        row["load"] = r["load"]
    else:
        row["batch"] = r["batch"]
        row["torch" if r["framework"].startswith("torch") else "burn"] = r
phases = [("step", "train step"), ("forward_backward", "fwd+bwd"), ("forward", "forward")]
print(f"\n{'size':>8} {'batch':>5} {'phase':>10} {'burn img/s':>11} {'torch img/s':>12} "
      f"{'burn/torch':>10} {'burn cores':>10} {'torch cores':>11} {'cpu-s ratio':>11} {'load':>5}")
for size, row in rows.items():
    for key, name in phases:
        b, t = row["burn"], row["torch"]
        rb, rt = b[f"{key}_img_per_sec"], t[f"{key}_img_per_sec"]
        print(f"{size:>8} {row['batch']:>5} {name:>10} {rb:>11.1f} {rt:>12.1f} {rb / rt:>10.2f} "
              f"{b[f'{key}_busy_cores']:>10.2f} {t[f'{key}_busy_cores']:>11.2f} "
              f"{(rb / b[f'{key}_busy_cores']) / (rt / t[f'{key}_busy_cores']):>11.2f} {row['load']:>5}")
print("cores: process CPU time / wall time while timing (2 = both cores busy); "
      "cpu-s ratio: burn/torch in images per CPU-second (spin-waiting threads count as busy)")
PY
