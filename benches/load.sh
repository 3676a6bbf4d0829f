#!/usr/bin/env bash
# End-to-end HTTP throughput with a cached token, through the layer and without it, in one
# run: the same hyper server (examples/load_server.rs) with and without AuthLayer, loaded
# by wrk over loopback, alternating, ROUNDS times each. The server is pinned to CPU 0 and
# wrk to CPU 1, so each side has one core whatever the machine.
#
#   benches/load.sh [seconds per run, default 10] [connections, default 64]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
conns=${2:-64}
rounds=${ROUNDS:-3}

if ! command -v wrk >/dev/null 2>&1; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
fi
cargo build -q --release --example load_server
scratch=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$scratch"' EXIT

# One run: start the server (with "$1" as its flag), warm it, load it, print requests/s.
run() {
  taskset -c 0 target/release/examples/load_server $1 >"$scratch/server" &
  local pid=$!
  for _ in $(seq 1 100); do [ -s "$scratch/server" ] && break; sleep 0.05; done
  read -r addr id secret <"$scratch/server"
  local headers=(-H "x-finout-client-id: $id" -H "x-finout-secret-key: $secret")
  # The first authenticated request runs argon2 and caches the token.
  taskset -c 1 wrk -t1 -c1 -d1s "${headers[@]}" "http://$addr/" >/dev/null
  taskset -c 1 wrk -t1 -c"$conns" -d"${secs}s" "${headers[@]}" "http://$addr/" >"$scratch/wrk"
  kill "$pid"; wait "$pid" 2>/dev/null || true
  if grep -q "Non-2xx" "$scratch/wrk"; then
    echo "non-2xx answers: the token was not accepted" >&2; cat "$scratch/wrk" >&2; exit 1
  fi
  awk '/Requests\/sec/ {print $2}' "$scratch/wrk"
}

with=(); without=(); ratios=()
for round in $(seq 1 "$rounds"); do
  without+=("$(run --no-auth)")
  with+=("$(run "")")
  ratios+=("$(awk -v a="${with[-1]}" -v b="${without[-1]}" 'BEGIN {printf "%.1f", 100 * a / b}')")
  echo "round $round: without layer ${without[-1]} req/s, with layer ${with[-1]} req/s (${ratios[-1]}%)" >&2
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
echo "cores: $(nproc); wrk: 1 thread, $conns connections, ${secs}s per run, $rounds runs each"
echo "without layer: median $(median "${without[@]}") req/s"
echo "with layer:    median $(median "${with[@]}") req/s"
# Each round's pair ran back to back, so its ratio is the steadier figure on a noisy machine.
echo "with/without, per round: ${ratios[*]}; median $(median "${ratios[@]}")%"
