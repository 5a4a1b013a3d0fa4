#!/usr/bin/env bash
# Runs every fuzz target for a bounded time and prints one table row each:
# target, seconds, executions, and whether libFuzzer found a crash.
#
#   fuzz/run.sh            # 60 seconds per target
#   fuzz/run.sh 300        # 300 seconds per target
#   fuzz/run.sh 30 host    # one target
#
# Needs the nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`).
set -uo pipefail
cd "$(dirname "$0")"
secs=${1:-60}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(cargo +nightly fuzz list)
fi
cargo +nightly fuzz build -O >/dev/null
echo "| target | seconds | executions | crashes |"
echo "|---|---|---|---|"
status=0
for t in "${targets[@]}"; do
  log=$(mktemp)
  cargo +nightly fuzz run -O "$t" -- -max_total_time="$secs" -print_final_stats=1 >"$log" 2>&1
  rc=$?
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -n 1)
  crashes=$(ls "artifacts/$t" 2>/dev/null | wc -l)
  if [ "$rc" -ne 0 ]; then status=1; fi
  echo "| $t | $secs | ${runs:-?} | $crashes |"
  rm -f "$log"
done
exit $status
