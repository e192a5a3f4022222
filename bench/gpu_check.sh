#!/usr/bin/env bash
# GPU check for a lent device machine (no network, no cargo there). Prepare here with
# `bash bench/gpu_prepare.sh --extra` (it builds and compresses the binaries into .devbin/ and
# .devbin-extra/, fetches the Vulkan loader into .gl/, and prints the `run` calls to make). A device loan is 15 minutes in
# all, start included, so the steps run most important first, each only if the time budget
# (GPU_CHECK_BUDGET_S, default 420 s) still holds it; a step that does not fit says so.
#   throughput  bench/train_throughput.rs on the wgpu backend, with burn's transposed convs and
#               with the sub-pixel form (SENSE_GPU_DECONV), against bench/torch_reference.py on
#               CUDA: the ratio table of issue 11 (train step, fwd+bwd, forward)
#   autotune    first-epoch images/s of a first and a second start of `sense train` (the
#               autotune cache in the per-user cache directory)
#   layers      the per-layer tables at 160x224 (one read-back per batch of calls), both forms
#               and PyTorch's, and each kernel of a train step with its launches and GPU time
#   cpu         burn-flex against PyTorch on the machine's CPU cores (images/s, busy cores)
#   dist        the train step of the `dist` profile's build against the release build's
#               (issue 16), when train_throughput-dist is in the binary folder
#   vulkan      the train step built with the `vulkan` feature (cubecl's SPIR-V compiler)
#               against the default WGSL build and PyTorch, when train_throughput-vulkan is in
#               the binary folder (issue 11, item 3)
#   product     `sense train --backend auto` end to end: adapter choice, a resume, and the
#               clustering + contrastive losses on the GPU
#
#   bash bench/gpu_check.sh [--bin-dir .devbin] [--steps throughput,autotune,...]
#   bash bench/gpu_check.sh --dry-run [--steps ...]
# --bin-dir: the folder holding the xz-compressed binaries. A call carries at most 64 MiB, so
#   gpu_prepare.sh makes two: .devbin/ (sense, train_throughput) for the first call, and
#   .devbin-extra/ (train_throughput, train_throughput-dist, train_throughput-vulkan) for a
#   second that runs `--steps dist,vulkan`.
# --dry-run: here, without a GPU: every step on the CPU with tiny shapes and one epoch, from the
#   binaries cargo built (target/release, target/dist, $SENSE_VULKAN_TARGET_DIR/release), to
#   check the script itself before a loan is spent on it.
# Everything it prints also lands in $OUT/gpu_check.log; the run directories stay in /tmp.
set -uo pipefail
cd "$(dirname "$0")/.."

bin_dir=.devbin
dry_run=false
selected=throughput,autotune,layers,cpu,dist,vulkan,product
while (($#)); do
    case "$1" in
        --bin-dir) bin_dir="$2"; shift 2 ;;
        --steps) selected="$2"; shift 2 ;;
        --dry-run) dry_run=true; shift ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
done
budget_s=${GPU_CHECK_BUDGET_S:-420}
log_dir="${OUT:-/tmp}"
out=/tmp/gpu-check-runs
rm -rf "$out"
mkdir -p "$out"
exec > >(tee "$log_dir/gpu_check.log") 2>&1

if $dry_run; then
    # The same steps on this machine's CPU, small enough to take a minute or two.
    backend=cpu auto=cpu torch_device=cpu
    sizes="28x28:16,50x50:8" layer_size="28x28:8" cpu_sizes="28x28:16" dist_sizes="28x28:16"
    steps=2 warmup=1 epochs=1 channels_s=150
    python="${SENSE_TORCH_VENV:-/var/tmp/sense-torch-venv}/bin/python"
    target="${CARGO_TARGET_DIR:-target}"
    bin_dir=$(mktemp -d)
    trap 'rm -rf "$bin_dir"' EXIT
    for pair in "sense:release/sense" "train_throughput:release/examples/train_throughput" \
        "train_throughput-dist:dist/examples/train_throughput"; do
        [[ -x $target/${pair#*:} ]] && ln -s "$(realpath "$target/${pair#*:}")" "$bin_dir/${pair%%:*}"
    done
    vulkan_bin="${SENSE_VULKAN_TARGET_DIR:-${target}-vulkan}/release/examples/train_throughput"
    [[ -x $vulkan_bin ]] && ln -s "$(realpath "$vulkan_bin")" "$bin_dir/train_throughput-vulkan"
    echo "dry run on $(nproc) CPU cores, binaries: $(ls "$bin_dir" | tr '\n' ' ')"
else
    backend=gpu auto=auto torch_device=cuda
    sizes="28x28:128,50x50:128,160x224:32,256x256:32" layer_size="160x224:32"
    cpu_sizes="28x28:128,50x50:128" dist_sizes="28x28:128,160x224:32"
    steps=30 warmup=5 epochs=3 channels_s=40
    python=python3
    for f in .gl/*.deb; do dpkg -x "$f" /; done
    ldconfig
    icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
    [[ -f $icd ]] && export VK_DRIVER_FILES=$icd
    for f in "$bin_dir"/*.xz; do
        xz -d -k -f "$f" && chmod +x "${f%.xz}"
    done
    nvidia-smi -L
    echo "$(nproc) CPU cores; binaries: $(ls "$bin_dir" | tr '\n' ' ')"
fi
# Kernels autotuned by one step serve the next ones, a second call's on the same machine too
# (the autotune step uses a folder of its own).
export XDG_CACHE_HOME=/tmp/gpu-check-cache

started_s=$SECONDS
left_s() { echo $((budget_s - (SECONDS - started_s))); }
# `begin SECONDS NAME TITLE [BINARY...]`: step NAME's header, or why it is skipped (it is not
# selected, a BINARY it runs is missing, or the budget left cannot hold the SECONDS it takes).
begin() {
    local need_s=$1 name=$2 title=$3
    shift 3
    [[ ,$selected, == *",$name,"* ]] || return 1
    local binary
    for binary in "$@"; do
        if [[ ! -x $bin_dir/$binary ]]; then
            echo; echo "=== $name: skipped, $bin_dir/$binary is missing"
            return 1
        fi
    done
    echo
    if (($(left_s) < need_s)); then
        echo "=== $name: skipped, ${need_s} s needed and $(left_s) s of the budget left"
        return 1
    fi
    echo "=== $name: $title ($(date +%T), $(left_s) s of the budget left)"
}
# A command's time limit: its own, or what is left of the budget when that is less.
limit() {
    local left
    left=$(left_s)
    echo $(($1 < left ? $1 : (left > 5 ? left : 5)))
}
# Tags each JSON line of train_throughput with its build and deconv form.
tag() { sed "s/^{/{\"build\": \"$1\", \"deconv\": \"$2\", /"; }

throughput_rows=/tmp/gpu-check-throughput.jsonl
: > "$throughput_rows"
# `burn_throughput BINARY BUILD DECONV`
burn_throughput() {
    echo "--- $2 build, decoder transposed convs: $3"
    SENSE_GPU_DECONV=$3 timeout "$(limit 180)" "$bin_dir/$1" --backend "$backend" \
        --sizes "$sizes" --steps "$steps" --warmup "$warmup" --json | tag "$2" "$3" \
        | tee -a "$throughput_rows"
}
torch_throughput() {
    echo "--- PyTorch ($torch_device)"
    timeout "$(limit 90)" "$python" bench/torch_reference.py --device "$torch_device" \
        --sizes "$sizes" --steps "$steps" --warmup "$warmup" | tee -a "$throughput_rows"
}
ratio_table() {
    "$python" - "$throughput_rows" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
torch = {r["size"]: r for r in rows if r["framework"].startswith("torch")}
burn = [r for r in rows if not r["framework"].startswith("torch")]
if not torch or not burn:
    sys.exit("no ratio table: a side has no rows (see above)")
print(f"{'size':>8} {'batch':>5} {'build':>6} {'deconv':>9} {'phase':>10} {'burn img/s':>11} {'torch img/s':>12} {'burn/torch':>10}")
for r in burn:
    t = torch.get(r["size"])
    if t is None:
        continue
    for key, name in (("step", "train step"), ("forward_backward", "fwd+bwd"), ("forward", "forward")):
        b, c = r[f"{key}_img_per_sec"], t[f"{key}_img_per_sec"]
        print(f"{r['size']:>8} {r['batch']:>5} {r['build']:>6} {r['deconv']:>9} {name:>10} {b:>11.0f} {c:>12.0f} {b / c:>10.3f}")
PY
}
# `first_epoch NAME RUN_DIR`: `--backend gpu` falls back to the CPU when the GPU fails, so the
# backend the run used is printed too.
first_epoch() {
    "$python" - "$@" <<'PY'
import json, sys
name, run_dir = sys.argv[1:]
epoch = json.loads(open(f"{run_dir}/metrics.jsonl").readline())
backend = json.load(open(f"{run_dir}/summary.json"))["backend"]
print(f"{name}: first epoch {epoch['images_per_sec']:.0f} img/s, {epoch['elapsed_secs']:.1f} s, on {backend}")
PY
}

# The first GPU step autotunes every kernel shape (cubecl compiles and times the candidates), so
# it takes the longest; each size's row is printed as soon as it is measured.
if begin 240 throughput "train step on the GPU against PyTorch CUDA" train_throughput; then
    for deconv in burn subpixel; do
        burn_throughput train_throughput wgsl "$deconv"
    done
    torch_throughput
    ratio_table
fi

if begin 80 autotune "first and second start on the same shapes (1 epoch of sample:mnist each)" sense; then
    # A fresh per-user cache directory: the first start autotunes and writes it, the second reads it.
    cache=/tmp/gpu-check-autotune-cache
    rm -rf "$cache"
    for start in first second; do
        XDG_CACHE_HOME=$cache timeout "$(limit 60)" "$bin_dir/sense" train --data sample:mnist \
            --epochs 1 --backend "$backend" --quiet --out "$out/autotune-$start" >/dev/null &&
            first_epoch "$start start" "$out/autotune-$start"
    done
    find "$cache" -type f 2>&1 | head -n 5
fi

if begin 90 layers "per-layer ms at $layer_size (one read-back per batch of calls)" train_throughput; then
    # --kernels: every kernel of a train step, launches and device time (timestamp queries).
    for deconv in burn subpixel; do
        SENSE_GPU_DECONV=$deconv timeout "$(limit 45)" "$bin_dir/train_throughput" \
            --backend "$backend" --sizes "$layer_size" --steps 10 --warmup 2 --ops --kernels
    done
    timeout "$(limit 30)" "$python" bench/torch_reference.py --device "$torch_device" \
        --sizes "$layer_size" --steps 10 --warmup 2 --ops
fi

if begin 70 cpu "burn-flex (lowered convs) against PyTorch CPU on $(nproc) cores" train_throughput; then
    timeout "$(limit 45)" "$bin_dir/train_throughput" --backend cpu --sizes "$cpu_sizes" \
        --steps 10 --warmup 2
    timeout "$(limit 30)" "$python" bench/torch_reference.py --device cpu --sizes "$cpu_sizes" \
        --steps 10 --warmup 2
fi

if begin 80 dist "dist build against release build, train step on the GPU" train_throughput \
    train_throughput-dist; then
    # The dist profile builds the host code that launches GPU kernels (cubecl-runtime,
    # cubecl-wgpu, burn-cubecl) at opt-level "z" (Cargo.toml); at 28x28 the step is launch-bound,
    # where that would show. The same bench in both builds; alternated twice against drift.
    for round in 1 2; do
        for build in release dist; do
            binary=train_throughput
            [[ $build == dist ]] && binary=train_throughput-dist
            echo "--- $build build, round $round"
            timeout "$(limit 60)" "$bin_dir/$binary" --backend "$backend" --sizes "$dist_sizes" \
                --steps "$steps" --warmup "$warmup"
        done
    done
fi

if begin 150 vulkan "the vulkan build (SPIR-V) against the default build (WGSL) and PyTorch" \
    train_throughput train_throughput-vulkan; then
    # Its own rows, so this step also runs alone in a second call (--steps vulkan).
    : > "$throughput_rows"
    burn_throughput train_throughput wgsl subpixel
    burn_throughput train_throughput-vulkan vulkan subpixel
    burn_throughput train_throughput-vulkan vulkan burn
    torch_throughput
    ratio_table
fi

if begin 90 product "sense train end to end (backend $auto)" sense; then
    echo "--- sample:mnist, 2 epochs, then a resume to a 3rd"
    timeout "$(limit 40)" "$bin_dir/sense" train --data sample:mnist --epochs 2 --backend "$auto" \
        --quiet --out "$out/mnist" && cat "$out/mnist/summary.json" && echo
    timeout "$(limit 25)" "$bin_dir/sense" train --data sample:mnist --epochs 3 --backend "$auto" \
        --quiet --out "$out/mnist" --resume && cat "$out/mnist/summary.json" && echo
    echo "--- sample:channels, 1 epoch, clustering + contrastive losses"
    timeout "$(limit "$channels_s")" "$bin_dir/sense" train --data sample:channels --epochs 1 \
        --backend "$backend" --quiet --lambda-cluster 0.2 --lambda-contrastive 0.2 \
        --out "$out/channels" && cat "$out/channels/summary.json" && echo &&
        tail -n 1 "$out/channels/metrics.jsonl"
fi

echo
echo "=== done ($(date +%T), $((SECONDS - started_s)) s of the ${budget_s} s budget used)"
