#!/usr/bin/env bash
# How a bounded run scales: wall time and peak resident memory of `sg-host run` (default
# component and detector) over generated inputs of 1M events (1,000 and 100K users), 10M events
# (100K users) and 3M events over 1M users (with --memory-limit 2GiB: the features component's
# per-user state outgrows the default 512 MiB cap past ~500K users), best of 3 each; then the
# growth per added user and
# per added event, and cost per event at 100K users against 1,000 (goal: within 1.2×) and at
# 10M events / 100K users (goal: peak ≤ 512 MiB). The 10M-event file is 4.5 GB.
# Usage: scripts/bench-scale.sh
set -euo pipefail
cd "$(dirname "$0")/.."
target_dir="${CARGO_TARGET_DIR:-$PWD/target}"   # where cargo builds (a shared cache when set)
[ -x /usr/bin/time ] || { apt-get update -qq && apt-get install -y -qq time; }
cargo build --release --locked -p sg-host
bin=$target_dir/release/sg-host
work=target/bench-scale
mkdir -p "$work"
echo "$(nproc) cores, $(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo)"
printf '%-26s %10s %12s %10s %12s\n' "input" "wall s" "events/s" "peak MiB" "size"
declare -A wall rss
for config in "1000000 1000" "1000000 100000" "10000000 100000" "3000000 1000000"; do
    set -- $config
    input="$work/events-$1-$2.jsonl"
    [ -s "$input" ] || "$bin" gen-events "$1" --users "$2" --compromised 20 --out "$input" 2> /dev/null
    best=999999; kb=0; cap=(); [ "$2" -ge 1000000 ] && cap=(--memory-limit 2GiB)
    for _ in 1 2 3; do
        /usr/bin/time -f "%e %M" -o "$work/time" "$bin" run -q "${cap[@]}" --input "$input" --out "$work/out" > /dev/null 2>&1
        read -r w k < "$work/time"
        if awk "BEGIN{exit !($w < $best)}"; then best=$w; fi
        [ "$k" -gt "$kb" ] && kb=$k
    done
    wall[$config]=$best; rss[$config]=$kb
    printf '%-26s %10.2f %12.0f %10.0f %12s\n' "$1 events, $2 users" "$best" "$(awk "BEGIN{print $1 / $best}")" "$(awk "BEGIN{print $kb / 1024}")" "$(du -h "$input" | cut -f1)"
done
a="1000000 1000"; b="1000000 100000"; c="10000000 100000"; d="3000000 1000000"
awk -v wa="${wall[$a]}" -v wb="${wall[$b]}" -v wc="${wall[$c]}" -v ra="${rss[$a]}" -v rb="${rss[$b]}" -v rc="${rss[$c]}" -v rd="${rss[$d]}" 'BEGIN{
    printf "per added user (1M events, 1,000 -> 100K users): %.2f KiB peak, %.2f us\n", (rb-ra)/99000, (wb-wa)*1e6/99000
    printf "per added event (100K users, 1M -> 10M events): %.1f bytes peak, %.3f us\n", (rc-rb)*1024/9e6, (wc-wb)*1e6/9e6
    printf "1M events over 100K users vs over 1,000: %.2fx the time (goal <= 1.2x)\n", wb/wa
    printf "10M events vs 1M events (100K users): %.2fx the time for 10x the events\n", wc/wb
    printf "10M events / 100K users peak: %.0f MiB (goal <= 512 MiB); 3M events / 1M users: %.0f MiB\n", rc/1024, rd/1024
}'
