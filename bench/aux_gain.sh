#!/usr/bin/env bash
# Issue 5's third target: do the confident pseudo-labels make a better latent space?
# Trains the paper AE on sample:channels three ways — same seed, epochs and everything else:
#   base    reconstruction only;
#   hand    + λ_cl 0.2 (soft silhouette) + λ_con 0.2 (contrastive) on the hand-labelled members
#           only (the store's manual labels as a plain `id,label` file);
#   pseudo  the same terms on the hand labels and the pseudo-labels with confidence ≥ 0.9 from a
#           `sense pseudo-label` label store;
# then scores each run's latents the paper's way — a UMAP (`sense embed`) of the hand-labelled
# members, silhouette and neighbourhood hit (k = 17) of their labels — and, because training
# saw those labels, also on 2,500 members that were NOT hand-labelled, scored against the
# generator's ground truth.
#
#   bench/aux_gain.sh train --store LABELS.csv --out DIR [--backend gpu|cpu|auto] [--epochs N]
#   bench/aux_gain.sh score --store LABELS.csv --out DIR
#
# `train` starts the three runs at once: on a GPU a step of this small model is bound by the
# host (kernel launches), so three runs share one GPU with little slow-down. On a 2-core CPU
# run them there only if you have an hour. `score` needs python3 (standard library only).
#
# Measured (one NVIDIA H200, 10 epochs, the label store of bench/pseudo_label_targets.sh):
#   neighbourhood hit, hand-labelled members: base 0.981, hand 0.982, pseudo 0.993;
#   on 2,500 members nobody labelled:        base 0.952, hand 0.960, pseudo 0.984.
set -euo pipefail
cd "$(dirname "$0")/.."

phase="${1:-}"; shift || true
store=""; out=""; backend="cpu"; epochs=10
while (($#)); do
    case "$1" in
        --store) store="$2"; shift 2 ;;
        --out) out="$2"; shift 2 ;;
        --backend) backend="$2"; shift 2 ;;
        --epochs) epochs="$2"; shift 2 ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
done
[[ -n "$store" && -n "$out" && ( "$phase" == train || "$phase" == score ) ]] || {
    echo "usage: $0 train|score --store LABELS.csv --out DIR [--backend B] [--epochs N]" >&2
    exit 2
}
mkdir -p "$out"
sense="${SENSE_BIN:-${CARGO_TARGET_DIR:-target}/release/sense}"
[[ -x "$sense" ]] || cargo build --release --bin sense

if [[ "$phase" == train ]]; then
    common=(--data sample:channels --epochs "$epochs" --backend "$backend" --seed 7
            --export-latents all --quiet)
    aux=(--lambda-cluster 0.2 --lambda-contrastive 0.2)
    python3 - "$store" "$out/hand_labels.csv" <<'PY'
import csv, sys
with open(sys.argv[2], "w", newline="") as f:
    w = csv.writer(f); w.writerow(["id", "label"])
    for r in csv.DictReader(open(sys.argv[1])):
        if r["manual_label"]:
            w.writerow([r["id"], r["manual_label"]])
PY
    start=$(date +%s)
    # A run already finished (summary.json written) is kept.
    launch() { # name, then extra train arguments
        local name="$1"; shift
        [[ -f "$out/$name/summary.json" ]] && return 0
        "$sense" train "${common[@]}" "$@" --out "$out/$name" >"$out/$name.log" 2>&1 &
    }
    launch base
    launch hand "${aux[@]}" --labels "$out/hand_labels.csv"
    launch pseudo "${aux[@]}" --labels "$store" --pseudo-threshold 0.9
    status=0
    for job in $(jobs -p); do wait "$job" || status=1; done
    echo "three runs, $epochs epochs each, backend $backend: $(( $(date +%s) - start )) s"
    for run in base hand pseudo; do
        tail -n 1 "$out/$run.log"
        rm -rf "$out/$run/checkpoints"
    done
    exit $status
fi

# score: the ground truth of sample:channels, with the sample's member ids (000123).
truth="$out/truth.csv"; heldout="$out/heldout.csv"
if [[ ! -f "$truth" ]]; then
    "$sense" sample channels --out "$out/sample" >/dev/null
    python3 - "$out/sample/ground_truth.csv" "$truth" <<'PY'
import csv, sys, pathlib
rows = list(csv.DictReader(open(sys.argv[1])))
with open(sys.argv[2], "w", newline="") as f:
    w = csv.writer(f); w.writerow(["id", "label"])
    for r in rows:
        w.writerow([pathlib.PurePosixPath(r["id"]).stem, r["label"]])
PY
    rm -rf "$out/sample"
fi
# 2,500 members without a hand label, seeded.
python3 - "$store" "$truth" "$heldout" <<'PY'
import csv, random, sys
store, truth, out = sys.argv[1:]
hand = {r["id"] for r in csv.DictReader(open(store)) if r["manual_label"]}
rows = [r for r in csv.DictReader(open(truth)) if r["id"] not in hand and r["label"]]
random.Random(0).shuffle(rows)
with open(out, "w", newline="") as f:
    w = csv.writer(f); w.writerow(["id", "label"])
    for r in sorted(rows[:2500], key=lambda r: r["id"]):
        w.writerow([r["id"], r["label"]])
PY

printf '%-7s %-12s %10s %10s %10s %9s\n' run members silhouette nbhd-hit knn-acc probe
for run in base hand pseudo; do
    for set in hand heldout; do
        labels="$store"; [[ $set == heldout ]] && labels="$heldout"
        layout="$out/$run.$set.umap.npy"
        "$sense" embed --latents "$out/$run" --max-members 2500 --labels "$labels" \
            --out "$layout" --quiet
        "$sense" eval --embedding "$layout" --labels "$labels" --latents "$out/$run" --json \
            >"$out/$run.$set.eval.json"
        python3 - "$run" "$set" "$out/$run.$set.eval.json" <<'PY'
import json, sys
run, members, path = sys.argv[1:]
r = json.load(open(path))
print(f"{run:7s} {members:12s} {r['silhouette']:10.4f} {r['neighbourhood_hit']:10.4f} "
      f"{r['knn_accuracy']:10.4f} {r.get('linear_probe_accuracy', float('nan')):9.4f}")
PY
    done
done
