#!/usr/bin/env bash
# `make bench`, part "first full cycle": the whole of `make run` (release build, the sandbox and
# every service as separate processes, the typical workspace with the sandbox's limits off, LinkedIn
# and HubSpot connected through OAuth, a first sync of each) against a fresh database and stream,
# timing each first sync from Sync Now to its completion. Cleans up after itself.
set -euo pipefail
cd "$(dirname "$0")/.."

export BIN=${BIN:-target/release}
ID=$(date +%s)
export RUN=.run/cycle-bench-$ID
export DATABASE_URL=${CYCLE_BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/rp_cycle_$ID}
export RP_BUS_PREFIX=cycle$ID
export RP_BUS_STREAM=CYCLE_$ID
mkdir -p "$RUN"

bash infra/run.sh >"$RUN/run.out" 2>&1 &
RUN_PID=$!
cleanup() {
  kill -TERM "$RUN_PID" 2>/dev/null || true
  wait "$RUN_PID" 2>/dev/null || true
  psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE IF EXISTS rp_cycle_$ID WITH (FORCE)" postgres >/dev/null 2>&1 || true
  nats_stream_delete "CYCLE_$ID"
}
nats_stream_delete() { # no nats CLI on our machines: the JetStream API request, by hand
  python3 - "$1" <<'PY' || true
import socket, sys
s = socket.create_connection(("127.0.0.1", 4222), timeout=5)
s.recv(4096)
s.sendall(b'CONNECT {"verbose":false}\r\nPUB $JS.API.STREAM.DELETE.' + sys.argv[1].encode() + b' 0\r\n\r\nPING\r\n')
s.recv(4096)
PY
}
trap cleanup EXIT

# Wait for the demo to finish (run.sh prints "Running." when it has), with a timeout.
for _ in $(seq 1 1800); do
  grep -q '^Running\.' "$RUN/run.out" 2>/dev/null && break
  kill -0 "$RUN_PID" 2>/dev/null || break
  sleep 0.5
done
echo "machine: $(nproc) cores, $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1); $(date -u +%F); load $(cut -d' ' -f1-3 /proc/loadavg)"
grep -E '^== first sync|took [0-9]+s|^rp sync|Sync run|completed|failed' "$RUN/run.out" || true
total=$(sed -n 's/.*(took \([0-9]*\)s).*/\1/p' "$RUN/run.out" | paste -sd+ | bc)
echo "first full cycle (LinkedIn then HubSpot, one after the other): ${total:-?} s   (target <= 60 s)"
