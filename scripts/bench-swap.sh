#!/usr/bin/env bash
# The pause a live upgrade causes in a running stream (goal <= 5 ms): a real broker (nisshi,
# memory storage) on loopback, EVENTS generated events (default 200,000) in 4 partitions, a
# `sg-host run --follow` with the admin API, and 20 uploads alternating streamguard and
# spark-compat while it consumes (a slice of the events is produced just before each upload). Prints each switch's pause (the candidate's check on the next
# batch) and each open window's move to the new version (its events replayed, done when the
# window next receives events), with their distributions. Usage: scripts/bench-swap.sh [EVENTS]
set -euo pipefail
cd "$(dirname "$0")/.."
target_dir="${CARGO_TARGET_DIR:-$PWD/target}"   # where cargo builds (a shared cache when set)
events="${1:-200000}"
[ -x "${CARGO_HOME:-$HOME/.cargo}/bin/nisshi" ] && [ -x .venv/bin/python ] || scripts/test-env.sh   # the broker and the venv
cargo build --release --locked -p sg-host
bin="$target_dir/release/sg-host"
work=target/bench-swap
rm -rf "$work"; mkdir -p "$work"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
admin_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
addr="127.0.0.1:$port"
"${CARGO_HOME:-$HOME/.cargo}/bin/nisshi" broker --listener-url "tcp://$addr" --advertised-listener-url "tcp://$addr" \
    --storage-engine memory://nisshi/ --group-initial-rebalance-delay 0s > "$work/broker.log" 2>&1 &
broker=$!
trap 'kill $broker 2>/dev/null || true; kill $follower 2>/dev/null || true' EXIT
until python3 -c "import socket; socket.create_connection(('127.0.0.1',$port),1)" 2>/dev/null; do sleep 0.2; done
"$bin" gen-events "$events" --compromised 2 --out "$work/events.jsonl" > /dev/null
# 21 slices: the first before the stream starts, one more just before each upload, so every
# candidate meets a stream with events in hand.
python3 - "$work" <<'PY'
import sys
work = sys.argv[1]
lines = open(f"{work}/events.jsonl").read().splitlines(keepends=True)
n = len(lines) // 21 + 1
for i in range(21):
    open(f"{work}/slice-{i}.jsonl", "w").writelines(lines[i * n:(i + 1) * n])
PY
"$bin" produce --brokers "$addr" --topic swap --key none --create-partitions 4 --input "$work/slice-0.jsonl" > /dev/null
guests=$target_dir/guests/wasm32-wasip2/guest
SG_ADMIN_TOKEN=bench "$bin" run -q --follow --source "kafka://$addr/swap" --window 60s --batch-events 8192 \
    --batch-wait 100ms -X session.timeout.ms=6000 --component builtin:streamguard --admin "127.0.0.1:$admin_port" \
    --no-dead-letter-topic --out "$work/out" 2> "$work/stderr" > /dev/null &
follower=$!
.venv/bin/python - "$admin_port" "$guests" "$bin" "$addr" "$work" <<'PY'
import hashlib, subprocess, sys, time, urllib.request
port, guests, sg_host, addr, work = sys.argv[1:6]
versions = [open(f"{guests}/sg_features_spark_compat.wasm", "rb").read(), open(f"{guests}/sg_features_streamguard.wasm", "rb").read()]
def get(path):
    return urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5).read().decode()
while True:
    try:
        if "sg_source_batches_total" in get("/metrics"): break
    except OSError: pass
    time.sleep(0.2)
for i in range(20):
    subprocess.run([sg_host, "produce", "--brokers", addr, "--topic", "swap", "--key", "none", "--input", f"{work}/slice-{i + 1}.jsonl"],
                   check=True, stdout=subprocess.DEVNULL)
    body = versions[i % 2]
    req = urllib.request.Request(f"http://127.0.0.1:{port}/components/features?sha256={hashlib.sha256(body).hexdigest()}",
                                 data=body, method="POST", headers={"Authorization": "Bearer bench"})
    urllib.request.urlopen(req, timeout=120).read()
    time.sleep(0.3)
PY
kill -INT $follower; wait $follower || true
grep -E "switch pause|moved from" "$work/stderr" | sed 's/^sg-host: //'
grep -o "switch pause [0-9.]*" "$work/stderr" | awk '{print $3}' | sort -n | awk '
    { v[NR] = $1 } END { printf "switch pause over %d swaps: min %.2f ms, median %.2f ms, max %.2f ms (goal <= 5 ms)\n", NR, v[1], v[int((NR+1)/2)], v[NR] }'
grep -o "in [0-9.]* ms ([0-9]* events replayed" "$work/stderr" | awk '{print $2}' | sort -n | awk '
    { v[NR] = $1 } END { if (NR) printf "window moves: %d, min %.2f ms, median %.2f ms, max %.2f ms\n", NR, v[1], v[int((NR+1)/2)], v[NR] }'
