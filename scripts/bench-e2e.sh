#!/usr/bin/env bash
# End-to-end anomaly pipeline on N generated events (default 1,000,000): wall time, events/s
# and peak resident memory of `sg-host run`, best of 5 rounds, with both feature components and both
# detectors, and what explanations cost (the default run against `--explain 0`, interleaved).
# Usage: scripts/bench-e2e.sh [EVENTS]
set -euo pipefail
cd "$(dirname "$0")/.."
target_dir="${CARGO_TARGET_DIR:-$PWD/target}"   # where cargo builds (a shared cache when set)
events="${1:-1000000}"
[ -x /usr/bin/time ] || { apt-get update -qq && apt-get install -y -qq time; }
cargo build --release --locked -p sg-host
bin=$target_dir/release/sg-host
work=target/bench-e2e
mkdir -p "$work"
input="$work/events-$events.jsonl"
[ -s "$input" ] || "$bin" gen-events "$events" --compromised 2 --out "$input"
echo "input: $input ($(du -h "$input" | cut -f1), $events events); $(nproc) cores"
printf '%-34s %10s %14s %10s\n' "configuration" "wall s" "events/s" "peak MiB"
configs=("builtin:streamguard native 5" "builtin:streamguard native 0" "builtin:spark-compat native 5"
         "builtin:streamguard builtin:iforest 5")
declare -A walls rsss
for _ in 1 2 3 4 5; do   # rounds over every configuration, so a noisy moment hits them alike
    for config in "${configs[@]}"; do
        set -- $config
        /usr/bin/time -f "%e %M" -o "$work/time" "$bin" run -q --component "$1" --detector "$2" --explain "$3" \
            --input "$input" --out "$work/out" > /dev/null
        read -r wall kb < "$work/time"
        if awk "BEGIN{exit !($wall < ${walls[$config]:-999999})}"; then walls[$config]=$wall; rsss[$config]=$kb; fi
    done
done
for config in "${configs[@]}"; do
    set -- $config
    printf '%-34s %10.2f %14.0f %10.0f\n' "${1#builtin:} + ${2#builtin:}, explain $3" "${walls[$config]}" \
        "$(awk "BEGIN{print $events / ${walls[$config]}}")" "$(awk "BEGIN{print ${rsss[$config]} / 1024}")"
done
with="${walls[builtin:streamguard native 5]}"; without="${walls[builtin:streamguard native 0]}"
echo "explanations (top 5 per user) cost: $(awk "BEGIN{printf \"%.1f\", 100 * ($with / $without - 1)}") % of the wall time (goal <= 5 %)"
