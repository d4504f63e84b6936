#!/usr/bin/env bash
# End-to-end anomaly pipeline on N generated events (default 1,000,000): wall time, events/s
# and peak resident memory of `sg-host run`, best of 5 rounds, with both feature components and both
# detectors, the same features compiled into the host (`--native-features`: what the sandbox costs
# end to end), the reference Spark job on the same file (scripts/spark_reference.py; pyspark and
# scikit-learn installed into .venv-bench; skipped with SG_BENCH_NO_SPARK=1), and what
# explanations cost (the default run against `--explain 0`, interleaved).
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
printf '%-44s %10s %14s %10s\n' "configuration" "wall s" "events/s" "peak MiB"
configs=("builtin:streamguard native 5" "builtin:streamguard native 5 --native-features" "builtin:spark-compat native 5"
         "builtin:spark-compat native 5 --native-features" "builtin:streamguard builtin:iforest 5")
declare -A walls rsss
for _ in 1 2 3 4 5; do   # rounds over every configuration, so a noisy moment hits them alike
    for config in "${configs[@]}"; do
        set -- $config
        /usr/bin/time -f "%e %M" -o "$work/time" "$bin" run -q --component "$1" --detector "$2" --explain "$3" ${4:-} \
            --input "$input" --out "$work/out" > /dev/null
        read -r wall kb < "$work/time"
        if awk "BEGIN{exit !($wall < ${walls[$config]:-999999})}"; then walls[$config]=$wall; rsss[$config]=$kb; fi
    done
done
for config in "${configs[@]}"; do
    set -- $config
    printf '%-44s %10.2f %14.0f %10.0f\n' "${1#builtin:}${4:+ (native)} + ${2#builtin:}, explain $3" "${walls[$config]}" \
        "$(awk "BEGIN{print $events / ${walls[$config]}}")" "$(awk "BEGIN{print ${rsss[$config]} / 1024}")"
done
for c in streamguard spark-compat; do
    awk "BEGIN{printf \"sandbox cost, $c: %.3fx the native-features pipeline (goal <= 1.15x)\n\", \
        ${walls[builtin:$c native 5]} / ${walls[builtin:$c native 5 --native-features]}}"
done

# The reference Spark job (local[*], the same 2 cores) on the same file, once: its features are
# checked against spark-compat's (same values, same users flagged) before its time is reported.
if [ "${SG_BENCH_NO_SPARK:-0}" != 1 ]; then
    if ! .venv-bench/bin/python -c "import pyspark, sklearn, pyarrow" 2>/dev/null; then
        command -v java > /dev/null || { apt-get update -qq && apt-get install -y -qq openjdk-17-jre-headless; }
        python3 -m venv .venv-bench
        .venv-bench/bin/pip install --quiet --disable-pip-version-check pyspark scikit-learn pyarrow "pandas<3"
    fi
    rm -rf "$work/spark-out"
    /usr/bin/time -f "%e %M" -o "$work/time" .venv-bench/bin/python scripts/spark_reference.py "$input" "$work/spark-out" > /dev/null 2> "$work/spark.log" \
        || { tail -20 "$work/spark.log"; exit 1; }
    read -r spark kb < "$work/time"
    "$bin" run -q --component builtin:spark-compat --input "$input" --out "$work/compat-out" --force > /dev/null 2>&1
    .venv-bench/bin/python scripts/spark_reference.py --compare "$work/spark-out" "$work/compat-out"
    printf '%-44s %10.2f %14.0f %10.0f\n' "reference Spark job (pyspark $(.venv-bench/bin/python -c 'import pyspark; print(pyspark.__version__)'))" \
        "$spark" "$(awk "BEGIN{print $events / $spark}")" "$(awk "BEGIN{print $kb / 1024}")"
    for config in "builtin:spark-compat native 5" "builtin:streamguard native 5"; do
        set -- $config
        awk "BEGIN{printf \"%s: %.0fx the reference Spark job (goal >= 100x)\n\", \"${1#builtin:}\", $spark / ${walls[$config]}}"
    done
fi

# What explanations cost: the default run (top 5 per user) against --explain 0, interleaved,
# best of 7 each, on the input above and on the same number of events over 1,000 and 100K users
# (where there are many rows to explain); with the seconds the run itself reports explaining.
some="$work/events-$events-1k-users.jsonl"
[ -s "$some" ] || "$bin" gen-events "$events" --users 1000 --compromised 5 --out "$some" > /dev/null
many="$work/events-$events-100k-users.jsonl"
[ -s "$many" ] || "$bin" gen-events "$events" --users 100000 --compromised 20 --out "$many" > /dev/null
for file in "$input" "$some" "$many"; do
    best5=999999; best0=999999; explain=0
    for _ in 1 2 3 4 5 6 7; do
        /usr/bin/time -f "%e" -o "$work/time" "$bin" run --explain 5 --input "$file" --out "$work/out" > /dev/null 2> "$work/log"
        wall=$(cat "$work/time"); awk "BEGIN{exit !($wall < $best5)}" && best5=$wall
        explain=$(grep -o 'explain [0-9.]* s' "$work/log" | awk '{print $2}')
        /usr/bin/time -f "%e" -o "$work/time" "$bin" run --explain 0 --input "$file" --out "$work/out" > /dev/null 2> "$work/log"
        wall=$(cat "$work/time"); awk "BEGIN{exit !($wall < $best0)}" && best0=$wall
    done
    users=$(python3 -c "import json; print(json.load(open('$work/out/_anomaly_report.json'))['total_users'])")
    awk "BEGIN{printf \"explanations, %s users: %.2f s with, %.2f s without (%+.1f %%; goal <= 5 %%); the run reports %.3f s explaining\n\", $users, $best5, $best0, 100*($best5/$best0-1), $explain}"
done
