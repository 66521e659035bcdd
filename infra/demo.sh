#!/usr/bin/env bash
# The demo `make run` shows (infra/run.sh starts the processes first): a workspace with an API
# key, LinkedIn and HubSpot connected through the real OAuth flow against the provider sandbox,
# a first sync cycle of each, then the connections' health and the dashboard numbers.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-target/release}
RUN=${RUN:-.run}
rp() { "$BIN/rp" "$@"; }

wait_grpc() { # waits until the connector answers (it may still be starting)
  for _ in $(seq 1 100); do
    rp health --workspace "$WS" >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  echo "the connector did not answer on its gRPC port"; return 1
}

if [ -s "$RUN/demo.env" ]; then
  # shellcheck disable=SC1091
  . "$RUN/demo.env"
  echo "demo workspace $WS (from $RUN/demo.env)"
else
  WS=$(rp --json workspaces create --name "Acme (demo)" --plan growth | sed -n 's/.*"workspace_id":"\([^"]*\)".*/\1/p')
  RP_API_KEY=$(rp --json keys create --workspace "$WS" --label demo | sed -n 's/.*"key":"\([^"]*\)".*/\1/p')
  [ -n "$WS" ] && [ -n "$RP_API_KEY" ] || { echo "could not create the demo workspace"; exit 1; }
  printf 'WS=%s\nRP_API_KEY=%s\n' "$WS" "$RP_API_KEY" > "$RUN/demo.env"
  echo "created demo workspace $WS and an API key (saved in $RUN/demo.env)"
fi
export RP_API_KEY WS

wait_grpc
if ! rp --json connections --workspace "$WS" | grep -qi linkedin; then
  echo "== connecting LinkedIn and HubSpot (OAuth 2.0 + PKCE against the sandbox)"
  rp connect --workspace "$WS" --provider linkedin
  rp connect --workspace "$WS" --provider hubspot
fi
rp connections --workspace "$WS"

echo "== first sync cycle (Sync Now on each integration, waiting for it to finish)"
for id in $(rp --json connections --workspace "$WS" | sed -n 's/.*"integration":"\([^"]*\)".*/\1/p'); do
  SECONDS=0
  rp sync-now --integration "$id" --wait
  echo "   (took ${SECONDS}s)"
done

echo "== connection health"
rp health --workspace "$WS"
echo "== dashboard (30-day window, linear model)"
rp dashboard --workspace "$WS" --window 30 --model linear
echo "== dashboard (90-day window, U-shaped model)"
rp dashboard --workspace "$WS" --window 90 --model u-shaped
cat <<MSG

Try it yourself (in another terminal):
  export RP_API_KEY=$RP_API_KEY
  $BIN/rp health --workspace $WS
  $BIN/rp sync-now --integration <id> --wait
  grpcurl -plaintext -H "authorization: Bearer \$RP_API_KEY" -d '{"workspace_id":"$WS"}' 127.0.0.1:50051 rp.api.v1.Sync/GetConnectionHealth
MSG
