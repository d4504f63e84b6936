#!/usr/bin/env bash
# Stream memory: resident memory of `sg-host run --follow --window 1h` against a real broker
# (nisshi, memory storage, on loopback) once it has read every event of a topic and holds its
# windows open (lateness 48 h: none closes): the same generated events (1,000 users) with their
# times stretched over 24 hours (24 one-hour windows open) and squeezed into one hour (one window),
# at 500K and 1M events. Prints each resident set, then the memory per open window and per event
# held (each window's instance and the containment journal, which keeps a stream's batches).
# Usage: scripts/bench-stream-memory.sh
set -euo pipefail
cd "$(dirname "$0")/.."
target_dir="${CARGO_TARGET_DIR:-$PWD/target}"   # where cargo builds (a shared cache when set)
scripts/test-env.sh > /dev/null
cargo build --release --locked -p sg-host
bin="$target_dir/release/sg-host"
work=target/bench-stream-memory
rm -rf "$work"; mkdir -p "$work"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
port=$(free_port); addr="127.0.0.1:$port"
"${CARGO_HOME:-$HOME/.cargo}/bin/nisshi" broker --listener-url "tcp://$addr" --advertised-listener-url "tcp://$addr" \
    --storage-engine memory://nisshi/ > "$work/broker.log" 2>&1 &
broker=$!
trap 'kill $broker 2>/dev/null || true' EXIT
until python3 -c "import socket; socket.create_connection(('127.0.0.1',$port),1)" 2>/dev/null; do sleep 0.2; done

"$bin" gen-events 1000000 --users 1000 --compromised 5 --out "$work/base.jsonl" 2> /dev/null
# The first N events with their times mapped linearly onto H hours from the first one.
stretch() {
    python3 - "$work/base.jsonl" "$1" "$2" "$3" <<'PY'
import json, sys
src, n, hours, out = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
lines = open(src).readlines()[:n]
first, last = json.loads(lines[0])["timestamp"], json.loads(lines[-1])["timestamp"]
scale = (hours * 3600_000 - 1) / max(last - first, 1)
with open(out, "w") as f:
    for line in lines:
        e = json.loads(line)
        e["timestamp"] = first + int((e["timestamp"] - first) * scale)
        f.write(json.dumps(e, separators=(",", ":")) + "\n")
PY
}

declare -A rss
printf '%-28s %12s %12s\n' "events held" "windows" "resident MiB"
for case in "500000 24" "1000000 24" "1000000 1"; do
    set -- $case
    topic="mem-$1-$2"
    stretch "$1" "$2" "$work/$topic.jsonl"
    "$bin" produce --brokers "$addr" --topic "$topic" --key event-id --create-partitions 4 --input "$work/$topic.jsonl" > /dev/null 2>&1
    admin=$(free_port)
    "$bin" run -q --source "kafka://$addr/$topic" --follow --window 1h --lateness 48h --max-open-windows 40 \
        --no-dead-letter-topic --admin "127.0.0.1:$admin" --out "$work/out-$topic" > "$work/$topic.log" 2>&1 &
    pid=$!
    deadline=$((SECONDS + 600))
    until [ "$(curl -s "127.0.0.1:$admin/metrics" | awk '/^sg_component_records_total/{n+=$2} END{print n+0}')" -ge "$1" ]; do
        [ $SECONDS -lt $deadline ] || { echo "timed out: $(tail -3 "$work/$topic.log")"; exit 1; }
        sleep 0.5
    done
    sleep 2
    rss[$case]=$(awk '/VmRSS/{print $2}' /proc/$pid/status)
    printf '%-28s %12s %12.0f\n' "$1" "$2" "$(awk "BEGIN{print ${rss[$case]} / 1024}")"
    kill -TERM $pid; wait $pid || true
done
awk -v a="${rss[500000 24]}" -v b="${rss[1000000 24]}" -v c="${rss[1000000 1]}" 'BEGIN{
    printf "per event held (500K -> 1M events, 24 windows): %.0f bytes\n", (b-a)*1024/500000
    printf "per open window (1M events, 1 -> 24 windows): %.2f MiB\n", (b-c)/1024/23
}'
