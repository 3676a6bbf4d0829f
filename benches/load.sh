#!/usr/bin/env bash
# End-to-end HTTP throughput with a cached token, through the layer and without it, in one
# run. Two copies of the same server binary (tools/src/bin/load_server.rs: one service type, the
# layer switched on or off by a flag, so both run the same machine code) are loaded by wrk
# over loopback with the same token headers. Servers on CPU 0, wrk on CPU 1.
#
#   benches/load.sh [seconds per round, default 5] [connections per server, default 32]
#
# MODE=paired (default): both servers run at once on CPU 0, each loaded by its own wrk, for
#   ROUNDS rounds (default 8). The scheduler shares the core between them, so the host's
#   slowdowns hit both alike; which wrk starts first alternates. Each server's CPU time per
#   request (from /proc/PID/task/*/schedstat) is printed beside it, and the ratio of the two
#   as a cross-check: what the layered server would serve with a core of its own. It is
#   steadier than the request counts, which also carry how the scheduler split the core.
# MODE=alternate: one server at a time, alternating, the full core each; closest to a real
#   deployment, but on a noisy shared host consecutive runs differ by more than the layer.
# AA=1: both servers without the layer, to see the method's own spread (should be ~100%).
# SERVER_FLAGS=--axum: the servers wrap an axum Router instead of a bare service_fn.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-5}
conns=${2:-32}
rounds=${ROUNDS:-8}
mode=${MODE:-paired}
with_flag=""
[ "${AA:-0}" = 1 ] && with_flag="--no-auth"

if ! command -v wrk >/dev/null 2>&1; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
fi
cargo build -q --release -p finout-auth-tools --bin load_server
scratch=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$scratch"' EXIT

# Start one server with flag $2, named $1: its pid, address and token go in $scratch/$1.
start() {
  # shellcheck disable=SC2086 # the flags are words
  taskset -c 0 target/release/load_server $2 ${SERVER_FLAGS:-} >"$scratch/$1.line" &
  echo $! >"$scratch/$1.pid"
  for _ in $(seq 1 100); do [ -s "$scratch/$1.line" ] && break; sleep 0.05; done
  # The first authenticated request runs argon2 and caches the token.
  load "$1" 1 1 >/dev/null
}
# wrk against server $1 with $2 connections for $3 seconds; output in $scratch/$1.wrk.
load() {
  local addr id secret
  read -r addr id secret <"$scratch/$1.line"
  taskset -c 1 wrk -t1 -c"$2" -d"$3s" -H "x-finout-client-id: $id" \
    -H "x-finout-secret-key: $secret" "http://$addr/" >"$scratch/$1.wrk"
  if grep -q "Non-2xx" "$scratch/$1.wrk"; then
    echo "non-2xx answers from $1: the token was not accepted" >&2
    cat "$scratch/$1.wrk" >&2
    exit 1
  fi
}
requests() { awk '/requests in/ {print $1}' "$scratch/$1.wrk"; }
rate() { awk '/Requests\/sec/ {print $2}' "$scratch/$1.wrk"; }
cpu_ns() { cat /proc/"$(cat "$scratch/$1.pid")"/task/*/schedstat | awk '{s += $1} END {print s}'; }
pct() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.1f", 100 * a / b}'; }
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }

start without --no-auth
start with "$with_flag"
ratios=()
cpu_ratios=()
for round in $(seq 1 "$rounds"); do
  if [ "$mode" = alternate ]; then
    # Alternate which goes first, so a drift in the host's speed favours neither.
    if ((round % 2)); then order=(without with); else order=(with without); fi
    for server in "${order[@]}"; do load "$server" "$conns" "$secs"; done
    ratio=$(pct "$(rate with)" "$(rate without)")
    ratios+=("$ratio")
    echo "round $round: without $(rate without) req/s, with $(rate with) req/s: $ratio%" >&2
  else
    cpu0_without=$(cpu_ns without); cpu0_with=$(cpu_ns with)
    # Alternate which wrk starts first, so that neither side gets a head start every round.
    if ((round % 2)); then
      load without "$conns" "$secs" & a=$!
      load with "$conns" "$secs" & b=$!
    else
      load with "$conns" "$secs" & b=$!
      load without "$conns" "$secs" & a=$!
    fi
    wait "$a" "$b"
    cpu_without=$(($(cpu_ns without) - cpu0_without)); cpu_with=$(($(cpu_ns with) - cpu0_with))
    ratio=$(pct "$(requests with)" "$(requests without)")
    ratios+=("$ratio")
    per_without=$((cpu_without / $(requests without))); per_with=$((cpu_with / $(requests with)))
    # What the layered server would serve on a core of its own: CPU per request, inverted.
    cpu_ratio=$(pct "$per_without" "$per_with")
    cpu_ratios+=("$cpu_ratio")
    echo "round $round: without $(rate without) req/s ($per_without ns CPU/req)," \
      "with $(rate with) req/s ($per_with ns CPU/req): $ratio% (by CPU: $cpu_ratio%)" >&2
  fi
done
echo "cores: $(nproc); mode: $mode; server flags: ${SERVER_FLAGS:-none}; wrk: 1 thread, $conns connections per server, ${secs}s x $rounds rounds"
echo "throughput with the layer, % of without, per round: ${ratios[*]}"
echo "median: $(median "${ratios[@]}")%"
if [ "$mode" != alternate ]; then
  echo "by CPU per request (without / with), per round: ${cpu_ratios[*]}"
  echo "median: $(median "${cpu_ratios[@]}")%"
fi
