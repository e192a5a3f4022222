#!/usr/bin/env bash
# The classifier on a lent GPU machine (no cargo there), in the style of bench/gpu_check.sh:
# `.devbin/sense.xz` and the Vulkan loader's deb in `.gl/`, both made by bench/gpu_prepare.sh,
# travel with the call (carry: [".devbin", ".gl"]). Checks that `--backend gpu` picks the GPU through
# select_backend, that the network trains there (grouped/depthwise convs, SE, stochastic
# depth) and how its held-out accuracy and time compare with the same run on the CPU cores.
set -uo pipefail
log_dir="${OUT:-/tmp}"
out=/tmp/pseudo-label-gpu
mkdir -p "$out"
exec > >(tee "$log_dir/pseudo_label_gpu.log") 2>&1
for f in .gl/*.deb; do dpkg -x "$f" /; done
ldconfig
icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
[[ -f $icd ]] && export VK_DRIVER_FILES=$icd
xz -d -k -f .devbin/sense.xz && chmod +x .devbin/sense
nvidia-smi -L
for backend in gpu cpu; do
    echo "=== sample:channels, 10 epochs, --backend $backend ($(date +%T))"
    time timeout 240 .devbin/sense pseudo-label --data sample:channels --epochs 10 \
        --backend "$backend" --out "$out/channels-$backend.csv" --json --quiet \
        >"$out/channels-$backend.json" 2>"$out/channels-$backend.log"
    tail -n 3 "$out/channels-$backend.log"
    python3 -c "import json,sys; r=json.load(open(sys.argv[1])); print({k: r[k] for k in ['backend','heldout_accuracy','pseudo_labelled','above_threshold','train_secs','wall_secs']})" "$out/channels-$backend.json"
done
