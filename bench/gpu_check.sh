#!/usr/bin/env bash
# GPU check for a lent device machine (no network, no cargo there): the release binaries are
# built here with the `gpu` feature, stripped and xz-compressed into .devbin/, and the Vulkan
# loader's .deb files fetched into .gl/ (see /work/.library/device/README.md). It runs
#   1. `sense train` on sample:mnist and sample:channels with `--backend auto` (adapter choice,
#      learning, aux losses on the GPU) and a resume on the GPU,
#   2. bench/train_throughput.rs on the wgpu backend against bench/torch_reference.py on CUDA,
#   3. the same on the machine's CPU cores (burn-flex against PyTorch CPU).
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

sizes="28x28:128,50x50:128,160x224:32,256x256:32"
step "throughput on the GPU: burn wgpu"
timeout 90 .devbin/train_throughput --backend gpu --sizes "$sizes" --steps 30 --warmup 5
step "throughput on the GPU: PyTorch CUDA"
timeout 60 python3 bench/torch_reference.py --device cuda --sizes "$sizes" --steps 30 --warmup 5

cpu_sizes="28x28:128,50x50:128"
step "throughput on $(nproc) CPU cores: burn-flex"
timeout 45 .devbin/train_throughput --backend cpu --sizes "$cpu_sizes" --steps 10 --warmup 2
step "throughput on $(nproc) CPU cores: PyTorch CPU"
timeout 45 python3 bench/torch_reference.py --device cpu --sizes "$cpu_sizes" --steps 10 --warmup 2
step done
