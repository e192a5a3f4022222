#!/usr/bin/env bash
# CPU use of the desktop app under Xvfb (no GPU: the glow renderer on llvmpipe), on a fresh
# session of the embedded `channels` sample at the default 1440x900 window:
#   1. idle: the first map is on screen and nothing runs — CPU over 30 s (target < 2 % of a
#      core: the app draws no frames unless a worker or the user has news);
#   2. training: "Start" is clicked (XTEST, python-xlib in a venv made here) and, once
#      the run directory shows the run going, the whole process and the UI alone (event-loop
#      thread + llvmpipe rasteriser threads) are measured over 30 s (its share of a training).
# Usage: bench/app_cpu.sh [seconds]   (needs Xvfb; builds the release binary first)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-30}"
display=":97"
venv=/var/tmp/sense-xlib-venv
[ -x "$venv/bin/python" ] || { python3 -m venv "$venv" && "$venv/bin/pip" install -q python-xlib; }
cargo build --release --bin sense >/dev/null
binary="${CARGO_TARGET_DIR:-target}/release/sense"
work=$(mktemp -d)
Xvfb "$display" -screen 0 1440x900x24 >/dev/null 2>&1 &
xvfb=$!
trap 'kill "${app:-}" "$xvfb" 2>/dev/null || true; rm -rf "$work"' EXIT
sleep 2
DISPLAY="$display" "$binary" --session "$work/session" >"$work/app.log" 2>&1 &
app=$!

ticks_per_s=$(getconf CLK_TCK)
# utime + stime (clock ticks) of a /proc stat file.
cpu_ticks() { awk '{print $14 + $15}' "$1"; }
# Percent of one core used by a /proc stat file over $seconds.
measure() {
    local before after
    before=$(cpu_ticks "$1")
    sleep "$seconds"
    after=$(cpu_ticks "$1")
    awk -v d=$((after - before)) -v hz="$ticks_per_s" -v s="$seconds" \
        'BEGIN { printf "%.2f", 100 * d / hz / s }'
}

# The first map is saved as the session's layout; then let the animation settle.
for _ in $(seq 1 240); do
    [ -f "$work/session/layout.npy" ] && break
    sleep 0.5
done
[ -f "$work/session/layout.npy" ] || { echo "no map after 120 s"; cat "$work/app.log"; exit 1; }
sleep 5
idle=$(measure "/proc/$app/stat")
echo "idle app (first map shown, nothing running), ${seconds} s: ${idle} % of one core"

# "Start" sits under the Training heading of the left panel at the default layout (x=30,
# y=456 on the 1440x900 screen); a missed click fails the check below.
"$venv/bin/python" - "$display" <<'EOF'
import sys, time
from Xlib import X, display
from Xlib.ext import xtest
d = display.Display(sys.argv[1])
xtest.fake_input(d, X.MotionNotify, x=30, y=456)
d.sync(); time.sleep(0.3)
xtest.fake_input(d, X.ButtonPress, 1); d.sync(); time.sleep(0.05)
xtest.fake_input(d, X.ButtonRelease, 1); d.sync()
EOF
# The run directory's config is written when the trainer starts.
for _ in $(seq 1 120); do
    [ -s "$work/session/run/config.toml" ] && break
    sleep 0.5
done
[ -s "$work/session/run/config.toml" ] || { echo "training did not start (the Start click missed?)"; exit 1; }
sleep 5
# The UI's share: the main (event-loop) thread and Mesa's llvmpipe threads that rasterise
# its frames.
ui_ticks() {
    local sum=0 task
    for task in /proc/"$app"/task/*; do
        case "$(cat "$task/comm")" in
            llvmpipe*) sum=$((sum + $(cpu_ticks "$task/stat"))) ;;
        esac
    done
    echo $((sum + $(cpu_ticks "/proc/$app/task/$app/stat")))
}
ui_before=$(ui_ticks)
total=$(measure "/proc/$app/stat")
ui_after=$(ui_ticks)
ui=$(awk -v d=$((ui_after - ui_before)) -v hz="$ticks_per_s" -v s="$seconds" \
    'BEGIN { printf "%.2f", 100 * d / hz / s }')
echo "training on the CPU, ${seconds} s: whole app ${total} % of one core, of which the UI (event loop + llvmpipe) ${ui} %"
