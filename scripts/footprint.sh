#!/usr/bin/env bash
# The edge footprint of sg-host: binary size (x86-64, and aarch64 when built), resident memory
# idle (engine up, component loaded, waiting for input) and peak under the anomaly pipeline on
# 1M events, and the time from exec to the first batch written (1,000 events) with the built-in
# component compiled at start, loaded from the code cache, and from a bundle's precompiled code. Usage: scripts/footprint.sh [EVENTS]
set -euo pipefail
cd "$(dirname "$0")/.."
target_dir="${CARGO_TARGET_DIR:-$PWD/target}"   # where cargo builds (a shared cache when set)
events="${1:-1000000}"
[ -x /usr/bin/time ] || { apt-get update -qq && apt-get install -y -qq time; }
cargo build --release --locked -p sg-host
bin=$target_dir/release/sg-host
work=target/footprint
rm -rf "$work"; mkdir -p "$work"
mib() { awk "BEGIN{printf \"%.1f\", $1 / 1048576}"; }

strip -o "$work/sg-host.stripped" "$bin"
echo "binary x86-64: $(mib "$(stat -c %s "$bin")") MiB as built (line tables), $(mib "$(stat -c %s "$work/sg-host.stripped")") MiB stripped"
arm=$target_dir/aarch64-unknown-linux-gnu/release/sg-host
if [ -x "$arm" ]; then
    aarch64-linux-gnu-strip -o "$work/sg-host-arm.stripped" "$arm"
    echo "binary aarch64: $(mib "$(stat -c %s "$arm")") MiB as built, $(mib "$(stat -c %s "$work/sg-host-arm.stripped")") MiB stripped"
fi

# Idle: the pipeline started on a FIFO nobody writes to — engine, pool and component ready.
mkfifo "$work/idle.fifo"
"$bin" run -q --input "$work/idle.fifo" --out "$work/idle-out" & pid=$!
exec 3>"$work/idle.fifo"   # open the writer side so the reader blocks on read, not on open
sleep 2
echo "resident idle: $(awk '/VmRSS/{printf "%.1f MiB", $2/1024}' /proc/$pid/status) (VmHWM $(awk '/VmHWM/{printf "%.1f MiB", $2/1024}' /proc/$pid/status))"
exec 3>&-; wait $pid || true

input="$work/events.jsonl"
"$bin" gen-events "$events" --compromised 2 --out "$input" > /dev/null
/usr/bin/time -f "%e %M" -o "$work/time" "$bin" run -q --input "$input" --out "$work/out" > /dev/null
read -r wall kb < "$work/time"
echo "peak resident, $events events: $(awk "BEGIN{printf \"%.0f\", $kb/1024}") MiB (wall $wall s)"

head -n 1000 "$input" > "$work/first.jsonl"
"$bin" bundle keygen --out "$work/signer" > /dev/null
"$bin" bundle create --sign "$work/signer.key" --out "$work/bundle" --component "features=$(ls $target_dir/guests/wasm32-wasip2/guest/sg_features_streamguard.wasm)" > /dev/null
export SG_CODE_CACHE="$PWD/$work/code-cache"
for how in compiled cached bundle; do
    args=(--component builtin:streamguard); [ "$how" = bundle ] && args=(--bundle "$work/bundle" --trust "$work/signer.pub")
    cache=$SG_CODE_CACHE; [ "$how" = compiled ] && cache=off
    SG_CODE_CACHE=$cache "$bin" run -q "${args[@]}" --input "$work/first.jsonl" --out "$work/first-out" > /dev/null 2>&1   # fills the cache
    best=999999999
    for _ in 1 2 3 4 5; do
        start=$(date +%s%N)
        SG_CODE_CACHE=$cache "$bin" run -q "${args[@]}" --input "$work/first.jsonl" --out "$work/first-out" > /dev/null 2>&1
        t=$(( $(date +%s%N) - start )); [ "$t" -lt "$best" ] && best=$t
    done
    echo "exec to first batch written (1,000 events), builtin component $how: $(awk "BEGIN{printf \"%.0f\", $best/1e6}") ms (best of 5)"
done
