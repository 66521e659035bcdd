#!/usr/bin/env bash
# `make run`: start the provider sandbox and every service as separate processes against the local
# PostgreSQL and NATS, show the system working, and keep running until Ctrl-C (then stop all of
# it cleanly). Logs: .run/logs/<name>.log. With RUN_ONCE=1 it stops everything and exits as soon
# as it has shown the system working (exit 0 only when the demo worked): what the run-twice test
# uses. Every address can be moved with the services' own variables (SANDBOX_ADDR,
# CONNECTOR_GRPC_ADDR, CONNECTOR_HTTP_ADDR, MATCHER_GRPC_ADDR, ATTRIBUTION_GRPC_ADDR,
# NOTIFICATION_GRPC_ADDR, and each service's <SERVICE>_METRICS_ADDR); `rp` is pointed at the moved
# ones.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${BIN:-target/release}
RUN=${RUN:-.run}
LOGS=$RUN/logs
mkdir -p "$LOGS"
export DATABASE_URL=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/rp}
export NATS_URL=${NATS_URL:-nats://127.0.0.1:4222}
export RUST_LOG=${RUST_LOG:-info}
export SANDBOX_ADDR=${SANDBOX_ADDR:-127.0.0.1:7700}
SANDBOX=http://$SANDBOX_ADDR
export LINKEDIN_API_BASE=${LINKEDIN_API_BASE:-$SANDBOX/linkedin}
export LINKEDIN_AUTH_BASE=${LINKEDIN_AUTH_BASE:-$SANDBOX/linkedin}
export HUBSPOT_API_BASE=${HUBSPOT_API_BASE:-$SANDBOX/hubspot}
export HUBSPOT_AUTH_BASE=${HUBSPOT_AUTH_BASE:-$SANDBOX/hubspot}
export SALESFORCE_AUTH_BASE=${SALESFORCE_AUTH_BASE:-$SANDBOX/salesforce}
# The sandbox's OAuth clients (its defaults: GET /admin/config), said outright so that the
# connector accepts a sandbox moved to another address.
export LINKEDIN_CLIENT_ID=${LINKEDIN_CLIENT_ID:-sandbox-linkedin-client}
export LINKEDIN_CLIENT_SECRET=${LINKEDIN_CLIENT_SECRET:-sandbox-linkedin-secret}
export HUBSPOT_CLIENT_ID=${HUBSPOT_CLIENT_ID:-sandbox-hubspot-client}
export HUBSPOT_CLIENT_SECRET=${HUBSPOT_CLIENT_SECRET:-sandbox-hubspot-secret}
export SALESFORCE_CLIENT_ID=${SALESFORCE_CLIENT_ID:-sandbox-salesforce-client}
export SALESFORCE_CLIENT_SECRET=${SALESFORCE_CLIENT_SECRET:-sandbox-salesforce-secret}
# The demo's `rp` calls go to wherever the connector and attribution listen.
export RP_CONNECTOR_GRPC=${RP_CONNECTOR_GRPC:-http://${CONNECTOR_GRPC_ADDR:-127.0.0.1:50051}}
export RP_ATTRIBUTION_GRPC=${RP_ATTRIBUTION_GRPC:-http://${ATTRIBUTION_GRPC_ADDR:-127.0.0.1:50053}}
# The sandbox keeps its grants, tokens and clock in .run/ as a real provider keeps them: the
# connector's stored tokens still work at the next `make run`.
export SANDBOX_STATE_DIR=${SANDBOX_STATE_DIR:-$RUN/sandbox}
# The demo runs the typical workspace with the sandbox's rate limits off (docs/benchmarks.md).
export SANDBOX_HUBSPOT_RATE_LIMIT=${SANDBOX_HUBSPOT_RATE_LIMIT:-off}
# Tokens are sealed with a local key kept in .run/ (so a restart can still read them).
if [ -z "${CONNECTOR_TOKEN_KEYS:-}" ]; then
  [ -s "$RUN/token-key" ] || head -c 32 /dev/urandom | base64 > "$RUN/token-key"
  export CONNECTOR_TOKEN_KEYS="local:$(cat "$RUN/token-key")" CONNECTOR_TOKEN_KEY_ID=local
fi

pids=()
names=()
stop() {
  trap - INT TERM EXIT
  echo
  echo "stopping: ${names[*]}"
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  echo "stopped"
}
trap stop INT TERM EXIT

start() { # name [args...]
  local name=$1; shift
  if [ ! -x "$BIN/$name" ]; then echo "  (no $name binary yet: skipped)"; return; fi
  "$BIN/$name" "$@" >"$LOGS/$name.log" 2>&1 &
  pids+=($!); names+=("$name")
  echo "  $name (pid $!) → $LOGS/$name.log"
}

echo "== migrating $DATABASE_URL"
"$BIN/rp" migrate

echo "== starting"
start sandbox
for svc in connector matcher attribution notification; do start "$svc"; done
# The page and its gRPC-Web edge (services/web). For this demo only, it hands the demo
# workspace's key (from $RUN/demo.env) to a browser on this machine that asks, in a POST body.
export WEB_ADDR=${WEB_ADDR:-127.0.0.1:3000}
export WEB_DEMO_ENV=${WEB_DEMO_ENV:-$RUN/demo.env}
start web

# Give each process a moment to bind and subscribe; fail loudly if one died at startup.
for _ in $(seq 1 50); do
  all=1
  for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null || all=0; done
  [ "$all" = 0 ] && break
  "$BIN/rp" consumers >/dev/null 2>&1 && break
  sleep 0.2
done
for i in "${!pids[@]}"; do
  if ! kill -0 "${pids[$i]}" 2>/dev/null; then
    echo "!! ${names[$i]} exited at startup; last lines of its log:"; tail -n 20 "$LOGS/${names[$i]}.log"
  fi
done

if [ -x infra/demo.sh ]; then
  echo "== demo"
  bash infra/demo.sh
fi

echo "== the event log (newest 20)"
"$BIN/rp" events tail || true
echo "== consumers"
"$BIN/rp" consumers || true
echo
web_port=${WEB_ADDR##*:}
echo "The page: http://localhost:$web_port/workspace/connections"
echo "  (click \"Use the demo workspace\", or sign in with WS and RP_API_KEY from $RUN/demo.env)"
if [ "${RUN_ONCE:-0}" = 1 ]; then
  echo "RUN_ONCE=1: the demo worked; stopping."
  exit 0
fi
echo "Metrics (GET /metrics): connector ${CONNECTOR_METRICS_ADDR:-127.0.0.1:9101}, matcher ${MATCHER_METRICS_ADDR:-127.0.0.1:9102}, attribution ${ATTRIBUTION_METRICS_ADDR:-127.0.0.1:9103}, notification ${NOTIFICATION_METRICS_ADDR:-127.0.0.1:9104}"
echo "Running. In another terminal: $BIN/rp events tail --follow   ·   Ctrl-C stops everything."
wait "${pids[@]}" 2>/dev/null || true
