#!/usr/bin/env bash
# The demo `make run` shows (infra/run.sh starts the processes first): a workspace with an API
# key, LinkedIn and HubSpot connected through the real OAuth flow against the provider sandbox,
# a sync cycle in the help page's daily order (LinkedIn's engagement and company resolution
# first, then HubSpot's CRM pull, matching and attribution), then the connections' health and the
# dashboard numbers.
#
# Any number of times in a row: the workspace and key saved in $RUN/demo.env are reused while
# the database still has them, a connected integration is synced again rather than connected
# again, and one that is not connected (any more) is connected through OAuth again.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-target/release}
RUN=${RUN:-.run}
CONNECTOR=${RP_CONNECTOR_GRPC:-http://127.0.0.1:50051}
rp() { "$BIN/rp" "$@"; }

wait_grpc() { # waits until the connector answers (it may still be starting)
  for _ in $(seq 1 100); do
    rp health --workspace "$WS" >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  echo "the connector did not answer on its gRPC port"; return 1
}

# Whether the saved workspace and key are still in the database, the key not revoked (a new
# database, or `rp keys revoke`, means making new ones).
saved_key_is_live() {
  [ -n "${WS:-}" ] && [ -n "${RP_API_KEY:-}" ] || return 1
  local key_id=${RP_API_KEY#rpk_}
  key_id=${key_id%%_*}
  rp --json keys list --workspace "$WS" 2>/dev/null \
    | grep -q "\"key_id\":\"$key_id\".*\"revoked_at\":\"\""
}

# One provider's line of `rp --json connections` (empty when it was never connected).
connection() { rp --json connections --workspace "$WS" | grep -i "\"provider\":\"$1\"" | head -n 1 || true; }
integration_of() { connection "$1" | sed -n 's/.*"integration":"\([^"]*\)".*/\1/p'; }
status_of() { connection "$1" | sed -n 's/.*"status":"\([^"]*\)".*/\1/p'; }

connect() { # provider display-name: connect it unless it is connected already
  local status
  status=$(status_of "$1")
  case "$status" in
    Connected) echo "   $2 is connected already" ;;
    "") echo "-- connecting $2"; rp connect --workspace "$WS" --provider "$1" ;;
    *) echo "-- connecting $2 again (it is $status)"; rp connect --workspace "$WS" --provider "$1" ;;
  esac
}

sync_now() { # provider display-name: Sync Now, following the run to its end
  local id
  id=$(integration_of "$1")
  echo "-- $2"
  SECONDS=0
  if ! rp sync-now --integration "$id" --wait; then
    # The provider refused the stored grant and the integration was disconnected: what a user
    # does then is Reconnect, and sync again.
    [ "$(status_of "$1")" != Connected ] || return 1
    echo "-- $2 was disconnected: connecting it again"
    rp connect --workspace "$WS" --provider "$1"
    SECONDS=0
    rp sync-now --integration "$id" --wait
  fi
  echo "   (took ${SECONDS}s)"
}

if [ -s "$RUN/demo.env" ]; then
  # shellcheck disable=SC1091
  . "$RUN/demo.env"
fi
if saved_key_is_live; then
  echo "demo workspace $WS (from $RUN/demo.env)"
  cycle="sync cycle"
else
  [ ! -s "$RUN/demo.env" ] || echo "the workspace or key in $RUN/demo.env is not in the database any more: making new ones"
  WS=$(rp --json workspaces create --name "Acme (demo)" --plan growth | sed -n 's/.*"workspace_id":"\([^"]*\)".*/\1/p')
  RP_API_KEY=$(rp --json keys create --workspace "$WS" --label demo | sed -n 's/.*"key":"\([^"]*\)".*/\1/p')
  [ -n "$WS" ] && [ -n "$RP_API_KEY" ] || { echo "could not create the demo workspace"; exit 1; }
  printf 'WS=%s\nRP_API_KEY=%s\n' "$WS" "$RP_API_KEY" > "$RUN/demo.env"
  echo "created demo workspace $WS and an API key (saved in $RUN/demo.env)"
  cycle="first sync cycle"
fi
export RP_API_KEY WS

wait_grpc
echo "== connecting LinkedIn and HubSpot (OAuth 2.0 + PKCE against the sandbox)"
connect linkedin LinkedIn
connect hubspot HubSpot
rp connections --workspace "$WS"

echo "== $cycle, in the daily order (Sync Now on each integration, waiting for it to finish):"
echo "   LinkedIn (engagement, company resolution), then HubSpot (CRM pull, matching, attribution)"
sync_now linkedin LinkedIn
sync_now hubspot HubSpot

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
  grpcurl -plaintext -H "authorization: Bearer \$RP_API_KEY" -d '{"workspace_id":"$WS"}' ${CONNECTOR#http://} rp.api.v1.Sync/GetConnectionHealth
MSG
