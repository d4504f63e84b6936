#!/usr/bin/env bash
# Kafka benchmark against a real broker (nisshi, memory storage) on loopback, in one run:
#  (a) `sg-host run --max-events 1000` wall time, process start included (best of 5);
#  (b) full-topic throughput of `sg-host run` (the whole pipeline) against a raw librdkafka
#      consumer reading the same topic to nothing (scripts/raw_consume.py; Debian's kcat links
#      librdkafka 2.0.2, whose ApiVersion request nisshi 0.8.1 cannot parse);
#  (c) alerts/s through the Kafka alert sink: a bounded run over 1M events of 100K users with
#      every user alerting (`--alert-threshold 0`) to a topic, against the same run with no sink
#      (best of 3 each, interleaved): alerts / the difference in wall time.
# Usage: scripts/bench-kafka.sh [EVENTS]   (default 10000000)
set -euo pipefail
cd "$(dirname "$0")/.."
target_dir="${CARGO_TARGET_DIR:-$PWD/target}"   # where cargo builds (a shared cache when set)
events="${1:-10000000}"
scripts/test-env.sh
if ! .venv-bench/bin/python -c "import confluent_kafka" 2>/dev/null; then
    python3 -m venv .venv-bench
    .venv-bench/bin/pip install --quiet --disable-pip-version-check confluent-kafka
fi
cargo build --release --locked -p sg-host
bin="$target_dir/release/sg-host"
work=target/bench-kafka
mkdir -p "$work"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
addr="127.0.0.1:$port"
"${CARGO_HOME:-$HOME/.cargo}/bin/nisshi" broker --listener-url "tcp://$addr" --advertised-listener-url "tcp://$addr" \
    --storage-engine memory://nisshi/ > "$work/broker.log" 2>&1 &
broker=$!
trap 'kill $broker 2>/dev/null || true' EXIT
until python3 -c "import socket; socket.create_connection(('127.0.0.1',$port),1)" 2>/dev/null; do sleep 0.2; done

input="$work/events-$events.jsonl"
[ -s "$input" ] || "$bin" gen-events "$events" --compromised 2 --out "$input"
"$bin" produce --brokers "$addr" --topic security-events --key event-id --create-partitions 4 --input "$input"

best=999
for _ in 1 2 3 4 5; do
    s=$(date +%s.%N)
    "$bin" run -q --source "kafka://$addr/security-events" --max-events 1000 --no-dead-letter-topic --out "$work/out-1k" >/dev/null
    e=$(date +%s.%N)
    best=$(awk "BEGIN{d=$e-$s; print (d<$best)?d:$best}")
done
printf '(a) --max-events 1000 on a %s-event topic: %.3f s end to end (best of 5; goal <= 0.5 s, the old job: 228 s)\n' "$events" "$best"

read -r raw_n raw_s < <(.venv-bench/bin/python scripts/raw_consume.py "$addr" security-events)
[ "$raw_n" = "$events" ] || { echo "the raw consumer read $raw_n of $events"; exit 1; }
s=$(date +%s.%N)
"$bin" run -q --source "kafka://$addr/security-events" --no-dead-letter-topic --out "$work/out-all" >/dev/null
e=$(date +%s.%N)
sg_s=$(awk "BEGIN{print $e-$s}")
awk "BEGIN{printf \"(b) full topic: raw librdkafka consumer %.2f s (%.0f msg/s); sg-host run, whole pipeline, process start included %.2f s (%.0f events/s): %.0f%% of the raw consumer (goal >= 80%%)\n\", $raw_s, $events/$raw_s, $sg_s, $events/$sg_s, 100*$raw_s/$sg_s}"

alert_input="$work/events-1m-100k-users.jsonl"
[ -s "$alert_input" ] || "$bin" gen-events 1000000 --users 100000 --compromised 20 --out "$alert_input"
best_with=999; best_without=999
for i in 1 2 3; do
    for sink in with without; do
        args=(run -q --input "$alert_input" --out "$work/out-alerts" --alert-threshold 0)
        [ "$sink" = with ] && args+=(--alerts "kafka://$addr/alerts-$i")
        s=$(date +%s.%N); "$bin" "${args[@]}" >/dev/null; e=$(date +%s.%N)
        if [ "$sink" = with ]; then best_with=$(awk "BEGIN{d=$e-$s; print (d<$best_with)?d:$best_with}")
        else best_without=$(awk "BEGIN{d=$e-$s; print (d<$best_without)?d:$best_without}"); fi
    done
done
alerts=$(python3 -c "import json; print(json.load(open('$work/out-alerts/_anomaly_report.json'))['alerts'])")
awk "BEGIN{printf \"(c) %d alerts (OCSF JSON, key = alert id, acks=all, idempotent): run with the Kafka sink %.2f s, without %.2f s: %.0f alerts/s through the sink\n\", $alerts, $best_with, $best_without, $alerts/($best_with-$best_without)}"
