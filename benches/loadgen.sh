#!/usr/bin/env bash
# End-to-end load benchmark, as BENCHMARKS.md reports it:
#   benches/loadgen.sh [warmline loadgen options…]
# e.g.  benches/loadgen.sh --scenario retell-inbound --baseline --svg docs/bench/inbound.svg
#
# Starts, from the release build:
#   - the upstream simulator with the latencies measured in the field
#     (contact 200 ms, slots 140 ms, memory 150 ms) and no GoHighLevel burst
#     limit (the pool's first calls would otherwise be throttled);
#   - warmline as a production install runs it: default logging (to a file)
#     and tracing (every span through OpenTelemetry at the default sampler),
#     signed webhooks, Redis as L2, SQLite (or BENCH_DATABASE_URL) storage;
# imports the bench tenant on the demo number, runs `warmline loadgen`
# against it with the given options, and stops both.
#
# Environment: BENCH_DATABASE_URL (default: a SQLite file in a temp dir),
# BENCH_REDIS_URL (default redis://127.0.0.1:6379; "none" for L1 only),
# BENCH_SERVER_ENV (extra VAR=value pairs for warmline, space-separated),
# WARMLINE_BIN (default target/release/warmline, built if missing),
# BENCH_KEEP_LOG (a path: the server's log is copied there at the end).
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"
bin="${WARMLINE_BIN:-$target/release/warmline}"
[ -x "$bin" ] || cargo build --release
work="$(mktemp -d)"
sim_port="${BENCH_SIM_PORT:-18090}"
port="${BENCH_PORT:-18080}"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ -n "${REDIS_URL:-}" ]; then
    redis-cli -u "$REDIS_URL" --scan --pattern "${prefix}*" | xargs -r -n 500 redis-cli -u "$REDIS_URL" unlink >/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

wait_for() { for _ in $(seq 1 100); do curl -fsS "$1" >/dev/null 2>&1 && return 0; sleep 0.1; done; echo "no answer from $1" >&2; exit 1; }

# BENCH_SIM_ARGS replaces the latencies, e.g. "--knob *=latency_ms:0" for none,
# or fixed ones without jitter.
# shellcheck disable=SC2086
"$bin" simulate --addr "127.0.0.1:$sim_port" ${BENCH_SIM_ARGS:---field-latencies} --ghl-burst-limit 1000000000 >"$work/sim.log" 2>&1 &
pids+=($!)
wait_for "http://127.0.0.1:$sim_port/_sim/knobs"

export DATABASE_URL="${BENCH_DATABASE_URL:-sqlite://$work/warmline.db}"
redis="${BENCH_REDIS_URL:-redis://127.0.0.1:6379}"
# A key prefix of this run's own: nothing cached by an earlier run is found.
prefix="wlbench-$$-$(date +%s):"
if [ "$redis" != none ]; then export REDIS_URL="$redis" WARMLINE_REDIS_PREFIX="$prefix"; fi
export RETELL_API_KEY=key_bench_retell VAPI_SECRET=bench-vapi-secret ELEVENLABS_WEBHOOK_SECRET=wsec_bench
export BENCH_API_KEY=wl_bench_api_key WARMLINE_LOADGEN_API_KEY=wl_bench_api_key
export WARMLINE_ADDR="127.0.0.1:$port" WARMLINE_DEMO=off WARMLINE_SPILL_DIR="$work/spill"
# The simulator has no burst limit here, and neither does warmline's own
# GoHighLevel quota: the pool's first calls are not throttled.
export WARMLINE_UPSTREAM_GOHIGHLEVEL_RATE_LIMIT=1000000000
sim="http://127.0.0.1:$sim_port"
cat >"$work/tenant.toml" <<TOML
[[tenants]]
id = "bench-dental"
phone_number = "+15550100000"
name = "Bench Dental"
time_zone = "America/New_York"
crm = { kind = "gohighlevel", location_id = "loc_demo", token = "sim-ghl-token", base_url = "$sim" }
memory = { kind = "zep", token = "sim-zep-key", base_url = "$sim" }
calendar = { kind = "gohighlevel", location_id = "loc_demo", token = "sim-ghl-token", base_url = "$sim" }
vapi_assistant_id = "asst_bench"
whatsapp_instances = ["bench-clinic"]
api_keys_env = ["BENCH_API_KEY"]

[[tenants.services]]
id = "cleaning"
name = "Teeth cleaning"
duration_minutes = 30
calendar_id = "cal_demo_cleaning"
TOML
"$bin" migrate >/dev/null
"$bin" tenants import "$work/tenant.toml" >/dev/null
# shellcheck disable=SC2086
env ${BENCH_SERVER_ENV:-} "$bin" serve >"$work/warmline.log" 2>&1 &
pids+=($!)
wait_for "http://127.0.0.1:$port/ready"

"$bin" loadgen --target "http://127.0.0.1:$port" "$@"
echo "(warmline log: $(wc -l <"$work/warmline.log") lines; server RSS $(ps -o rss= -p "${pids[1]}") KiB)" >&2
echo "(upstream calls: $(curl -fsS "$sim/_sim/calls"))" >&2
if [ -n "${BENCH_KEEP_LOG:-}" ]; then cp "$work/warmline.log" "$BENCH_KEEP_LOG"; fi
