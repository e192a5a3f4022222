#!/usr/bin/env bash
# Prepares bench/gpu_check.sh here, where cargo and the network are (the device machine has
# neither): builds the release `sense` and `train_throughput` with the default `gpu` feature,
# strips and xz-compresses them into .devbin/, fetches the Vulkan loader's .deb into .gl/, checks
# what each device call would carry against the 64 MiB limit, and prints the calls to make.
#
#   bash bench/gpu_prepare.sh [--extra]
# --extra  also .devbin-extra/, for a second call running gpu_check's dist and vulkan steps:
#          train_throughput built with the `dist` profile (issue 16) and with the `vulkan`
#          feature (cubecl's SPIR-V compiler; issue 11), beside the release build's. The
#          vulkan build has its own target folder ($SENSE_VULKAN_TARGET_DIR, default
#          <target>-vulkan); from scratch, each of the two takes about an hour on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."

extra=false
while (($#)); do
    case "$1" in
        --extra) extra=true; shift ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
done
target="${CARGO_TARGET_DIR:-target}"
vulkan_target="${SENSE_VULKAN_TARGET_DIR:-${target}-vulkan}"
limit_mib=64

cargo build --release --bin sense --example train_throughput
if $extra; then
    cargo build --profile dist --example train_throughput
    CARGO_TARGET_DIR="$vulkan_target" cargo build --release --features vulkan \
        --example train_throughput
fi

# `pack SOURCE DEST_DIR NAME`: a stripped copy, compressed with the x86 filter (7 % smaller
# than plain xz on these binaries). In the background: the caller waits for `packing`.
packing=()
pack() {
    mkdir -p "$2"
    local copy="$2/$3"
    cp "$1" "$copy"
    strip "$copy"
    xz -f --x86 --lzma2=preset=9e,dict=128MiB "$copy" &
    packing+=($!)
}
rm -rf .devbin .devbin-extra
pack "$target/release/sense" .devbin sense
pack "$target/release/examples/train_throughput" .devbin train_throughput
if $extra; then
    pack "$target/dist/examples/train_throughput" .devbin-extra train_throughput-dist
    pack "$vulkan_target/release/examples/train_throughput" .devbin-extra train_throughput-vulkan
fi
for job in "${packing[@]}"; do
    wait "$job"
done
$extra && cp .devbin/train_throughput.xz .devbin-extra/

if ! ls .gl/libvulkan1_*.deb >/dev/null 2>&1; then
    # The device machine may lack the Vulkan loader; wgpu loads libvulkan.so.1 at run time.
    lists=/tmp/gpu-prepare-apt-lists
    mkdir -p .gl "$lists/partial"
    apt=(-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 "-oDir::State::Lists=$lists")
    apt-get "${apt[@]}" update -qq
    (cd .gl && apt-get "${apt[@]}" download libvulkan1)
fi

# What a call carries: the tracked files, the untracked ones git does not ignore, and `carry`.
mib() { awk '{ s += $1 } END { printf "%.1f", s / 1048576 }'; }
tree_mib=$({ git ls-files -z; git ls-files -z --others --exclude-standard; } \
    | xargs -0 stat -c %s 2>/dev/null | mib)
check_call() {
    local name=$1 carry_mib total
    shift
    carry_mib=$(find "$@" -type f -exec stat -c %s {} + | mib)
    total=$(awk -v a="$tree_mib" -v b="$carry_mib" 'BEGIN { printf "%.1f", a + b }')
    echo "$name: working tree ${tree_mib} MiB + carried ${carry_mib} MiB = ${total} MiB" \
        "(limit ${limit_mib} MiB)"
    if awk -v t="$total" -v l="$limit_mib" 'BEGIN { exit !(t > l) }'; then
        echo "  too large to travel: carry less" >&2
    fi
}
ls -l .devbin .devbin-extra 2>/dev/null || true
echo
check_call "call 1" .devbin .gl
$extra && check_call "call 2" .devbin-extra .gl
cat <<TEXT

Device calls, most important first (the loan is 15 minutes in all, the machine's start included;
make the second at once, while the machine is warm and keeps the first's autotune cache):
  1. run  command: GPU_CHECK_BUDGET_S=420 bash bench/gpu_check.sh
          carry: [".devbin", ".gl"]   timeout_s: 480
TEXT
if $extra; then
    cat <<TEXT
  2. run  command: GPU_CHECK_BUDGET_S=260 bash bench/gpu_check.sh --bin-dir .devbin-extra --steps dist,vulkan
          carry: [".devbin-extra", ".gl"]   timeout_s: 300
TEXT
fi
echo "Check the script here first: bash bench/gpu_check.sh --dry-run"
