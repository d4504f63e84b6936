#!/usr/bin/env bash
# `sg-host serve` under load, on loopback, in one run:
#  - 1,000 stream windows of 1,000 users each (one real bounded run's output, its Parquet files
#    hard-linked into 1,000 `window=…/` directories, each report given its own period — the
#    files the server reads are sg-host's own), and a log store (`dedup` of the 10k HDFS sample);
#  - per route, after one warm-up request: latency p50/p99 with one client and req/s with 64
#    concurrent clients (wrk, Debian's package; 10 s each): GET /api/anomalies (newest 100),
#    GET /api/anomalies?user=… (every window searched), POST /api/logs/search (a stored line:
#    its own vector, no embedding);
#  - the store search kernel on 100k points: criterion bench `store_search` (p50/p99 printed).
# Goals (issue 17): /api/anomalies p99 ≤ 20 ms over 1,000 windows × 1,000 users; search p99
# ≤ 5 ms on 100k points, embedding excluded.
# Usage: scripts/bench-serve.sh [WINDOWS]   (default 1000)
set -euo pipefail
cd "$(dirname "$0")/.."
target_dir="${CARGO_TARGET_DIR:-$PWD/target}"
windows="${1:-1000}"
command -v wrk >/dev/null || { sudo=$(command -v sudo || true); $sudo apt-get install -y -q wrk >/dev/null; }
scripts/fetch-model.sh >/dev/null
cargo build --release --locked -p sg-host
bin="$target_dir/release/sg-host"
work=target/bench-serve
rm -rf "$work" && mkdir -p "$work"

"$bin" gen-events 100000 --users 1000 --compromised 10 --out "$work/events.jsonl" >/dev/null
"$bin" run -q --input "$work/events.jsonl" --out "$work/run" >/dev/null
python3 - "$work/run" "$work/stream" "$windows" <<'PY'
import json, os, sys
run, stream, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
report = json.load(open(os.path.join(run, "_anomaly_report.json")))
hour = 3_600_000
for i in range(n):
    w = os.path.join(stream, f"window={1_767_225_600_000 + i * hour}")
    for part in ("is_anomaly=0", "is_anomaly=1"):
        src = os.path.join(run, part)
        if os.path.isdir(src):
            os.makedirs(os.path.join(w, part))
            for f in os.listdir(src):
                os.link(os.path.join(src, f), os.path.join(w, part, f))
    report["period"] = {"start": 1_767_225_600_000 + i * hour, "end": 1_767_225_600_000 + (i + 1) * hour}
    json.dump(report, open(os.path.join(w, "_anomaly_report.json"), "w"))
    open(os.path.join(w, "_SUCCESS"), "w").close()
print(f"{n} windows of {report['total_users']} users ({report['anomalous_users']} flagged each)")
PY
"$bin" dedup -q --input ../shared/data/hdfs-logs-10k-labelled.jsonl --store "$work/store" --dead-letters "$work/dead.jsonl" >/dev/null

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
addr="127.0.0.1:$port"
"$bin" serve --data "$work/stream" --store "$work/store" --listen "$addr" 2> "$work/serve.log" &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
until python3 -c "import socket; socket.create_connection(('127.0.0.1',$port),1)" 2>/dev/null; do sleep 0.2; done

line=$(head -1 ../shared/data/hdfs-logs-10k-labelled.jsonl | python3 -c 'import json,sys; print(json.dumps({"text": json.loads(sys.stdin.read())["text"], "k": 10}))')
cat > "$work/search.lua" <<LUA
wrk.method = "POST"
wrk.body = [[$line]]
wrk.headers["Content-Type"] = "application/json"
LUA
user=$(python3 -c "import json,urllib.request; print(json.load(urllib.request.urlopen('http://$addr/api/anomalies?limit=1'))['anomalies'][0]['user'])")

measure() {  # name, url, [wrk script]
    local name=$1 url=$2 script=${3:-}
    local s=() && [ -n "$script" ] && s=(-s "$script")
    local t0 t1
    t0=$(date +%s.%N)
    if [ -n "$script" ]; then   # warm-up: the first read of the outputs
        curl -sf -o /dev/null -X POST -H 'Content-Type: application/json' --data "$line" "$url"
    else
        curl -sf -o /dev/null "$url"
    fi
    t1=$(date +%s.%N)
    local one many
    one=$(wrk -t1 -c1 -d10s --latency "${s[@]}" "$url")
    many=$(wrk -t2 -c64 -d10s --latency "${s[@]}" "$url")
    printf '%-34s first %7.1f ms | 1 client: p50 %8s p99 %8s %9s req/s | 64 clients: p50 %8s p99 %8s %9s req/s\n' "$name" \
        "$(echo "($t1 - $t0) * 1000" | bc -l)" \
        "$(awk '/^ +50%/ {print $2}' <<<"$one")" "$(awk '/^ +99%/ {print $2}' <<<"$one")" "$(awk '/^Requests\/sec/ {print $2}' <<<"$one")" \
        "$(awk '/^ +50%/ {print $2}' <<<"$many")" "$(awk '/^ +99%/ {print $2}' <<<"$many")" "$(awk '/^Requests\/sec/ {print $2}' <<<"$many")"
    grep -E "Non-2xx|Socket errors" <<<"$one$many" || true
}
echo "sg-host serve: $windows windows × 1,000 users, $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs))"
measure "GET /api/anomalies" "http://$addr/api/anomalies"
measure "GET /api/anomalies?user=$user" "http://$addr/api/anomalies?user=$user"
measure "POST /api/logs/search (stored)" "http://$addr/api/logs/search" "$work/search.lua"
kill $server
cargo bench --locked -p sg-host --bench store_search -- --noplot 2>&1 | grep -E "^store_search|time:"
