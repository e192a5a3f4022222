#!/usr/bin/env bash
# GPU check for a lent device machine (no network, no cargo there): the release binaries are
# built here with the `gpu` feature, stripped and xz-compressed into .devbin/, and the Vulkan
# loader's .deb files fetched into .gl/ (see /work/.library/device/README.md). It runs
#   1. `sense train` on sample:mnist and sample:channels with `--backend auto` (adapter choice,
#      learning, aux losses on the GPU) and a resume on the GPU,
#   2. first-epoch images/s of a first and a second start (the autotune cache in the per-user
#      cache directory),
#   3. bench/train_throughput.rs on the wgpu backend, with burn's transposed convs and with the
#      sub-pixel form (SENSE_GPU_DECONV), against bench/torch_reference.py on CUDA, as a ratio
#      table, then the per-layer table of each at 160x224 (one read-back per batch of calls),
#   4. burn-flex against PyTorch on the machine's CPU cores (images/s and busy cores),
#   5. when .devbin/sense-dist.xz is there (`cargo build --profile dist`, xz-compressed), its
#      GPU training speed against the release binary's (issue 16: the dist profile builds the
#      GPU stack with opt-level "z", which also compiles the host code that launches kernels).
# Everything it prints also lands in $OUT/gpu_check.log; the run directories stay in /tmp.
set -uo pipefail
log_dir="${OUT:-/tmp}"
out=/tmp/gpu-check-runs
mkdir -p "$out"
exec > >(tee "$log_dir/gpu_check.log") 2>&1

for f in .gl/*.deb; do dpkg -x "$f" /; done
ldconfig
icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
[[ -f $icd ]] && export VK_DRIVER_FILES=$icd
xz -d -k -f .devbin/*.xz
chmod +x .devbin/sense .devbin/train_throughput
nvidia-smi -L
nproc

step() { echo; echo "=== $* ($(date +%T))"; }

step "sense train sample:mnist, 3 epochs, backend auto"
time timeout 100 .devbin/sense train --data sample:mnist --epochs 3 --backend auto --quiet \
    --out "$out/mnist"
cat "$out/mnist/summary.json"; echo

step "resume the mnist run for a 4th epoch"
time timeout 45 .devbin/sense train --data sample:mnist --epochs 4 --backend auto --quiet \
    --out "$out/mnist" --resume
cat "$out/mnist/summary.json"; echo

step "sense train sample:channels, 2 epochs, clustering + contrastive losses"
time timeout 120 .devbin/sense train --data sample:channels --epochs 2 --backend gpu --quiet \
    --lambda-cluster 0.2 --lambda-contrastive 0.2 --out "$out/channels"
cat "$out/channels/summary.json"; echo
tail -n 2 "$out/channels/metrics.jsonl"
ls "$out/channels"

step "autotune cache: first and second start on the same shapes (1 epoch of sample:mnist each)"
# A fresh per-user cache directory: the first start autotunes and writes it, the second reads it.
export XDG_CACHE_HOME=/tmp/gpu-check-cache
rm -rf "$XDG_CACHE_HOME"
for start in first second; do
    timeout 120 .devbin/sense train --data sample:mnist --epochs 1 --backend gpu --quiet \
        --out "$out/autotune-$start" >/dev/null
    # (No backslash inside an f-string's braces: Python before 3.12 refuses it.)
    python3 - "$start" "$out/autotune-$start/metrics.jsonl" <<'PY'
import json, sys
start, path = sys.argv[1:]
epoch = json.loads(open(path).readline())
print(f"{start} start: first epoch {epoch['images_per_sec']:.0f} img/s, {epoch['elapsed_secs']:.1f} s")
PY
done
find "$XDG_CACHE_HOME" -type f | head -n 5

sizes="28x28:128,50x50:128,160x224:32,256x256:32"
results=/tmp/gpu-check-throughput.jsonl
: > "$results"
for deconv in burn subpixel; do
    step "throughput on the GPU: burn wgpu, decoder transposed convs: $deconv"
    SENSE_GPU_DECONV=$deconv timeout 120 .devbin/train_throughput --backend gpu --sizes "$sizes" \
        --steps 30 --warmup 5 --json | sed "s/^{/{\"deconv\": \"$deconv\", /" | tee -a "$results"
done
step "throughput on the GPU: PyTorch CUDA"
timeout 90 python3 bench/torch_reference.py --device cuda --sizes "$sizes" --steps 30 --warmup 5 \
    | tee -a "$results"
python3 - "$results" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
torch = {r["size"]: r for r in rows if r["framework"].startswith("torch")}
print(f"{'size':>8} {'batch':>5} {'deconv':>9} {'phase':>10} {'burn img/s':>11} {'torch img/s':>12} {'burn/torch':>10}")
for r in rows:
    if r["framework"].startswith("torch"):
        continue
    t = torch[r["size"]]
    for key, name in (("step", "train step"), ("forward_backward", "fwd+bwd"), ("forward", "forward")):
        b, c = r[f"{key}_img_per_sec"], t[f"{key}_img_per_sec"]
        print(f"{r['size']:>8} {r['batch']:>5} {r['deconv']:>9} {name:>10} {b:>11.0f} {c:>12.0f} {b / c:>10.3f}")
PY

step "per-layer ms on the GPU, 160x224 batch 32 (one read-back per batch of calls)"
for deconv in burn subpixel; do
    SENSE_GPU_DECONV=$deconv timeout 90 .devbin/train_throughput --backend gpu --sizes 160x224:32 \
        --steps 10 --warmup 2 --ops
done
timeout 60 python3 bench/torch_reference.py --device cuda --sizes 160x224:32 --steps 10 --warmup 2 --ops

cpu_sizes="28x28:128,50x50:128"
step "throughput on $(nproc) CPU cores: burn-flex (lowered convs)"
timeout 60 .devbin/train_throughput --backend cpu --sizes "$cpu_sizes" --steps 10 --warmup 2
step "throughput on $(nproc) CPU cores: PyTorch CPU"
timeout 45 python3 bench/torch_reference.py --device cpu --sizes "$cpu_sizes" --steps 10 --warmup 2
if [[ -f .devbin/sense-dist.xz ]]; then
    step "dist binary against release binary: GPU training, sample:mnist (28x28, launch-bound)"
    # The autotune cache from the steps above is warm for these shapes; epoch 0 still compiles
    # kernels, so epochs 1-2 are compared. Alternated twice against drift.
    chmod +x .devbin/sense-dist
    for round in 1 2; do
        for bin in sense sense-dist; do
            rm -rf "$out/dist-$bin"
            timeout 90 ".devbin/$bin" train --data sample:mnist --epochs 3 --backend gpu --quiet \
                --seed 7 --out "$out/dist-$bin" >/dev/null
            python3 - "$bin" "$out/dist-$bin/metrics.jsonl" "$round" <<'PY'
import json, sys
name, path, round_ = sys.argv[1:]
epochs = [json.loads(line) for line in open(path)]
later = sum(e["images_per_sec"] for e in epochs[1:]) / max(len(epochs) - 1, 1)
first = epochs[0]["images_per_sec"]
val = epochs[-1]["val"]["total"]
print(f"{name:>10} round {round_}: epochs 1-2 {later:.0f} img/s, epoch 0 {first:.0f} img/s, val {val:.6f}")
PY
        done
    done
fi
step done
