#!/usr/bin/env bash
# A three-node NATS cluster with JetStream on loopback, for trying the platform on a cluster
# (docs/deploy.md) and for `make cluster-test` (which starts its own, on free ports, through the
# same layout: services/e2e/src/cluster.rs).
#
#   infra/nats-cluster.sh start DIR [BASE]   nodes n1..n3: clients on BASE..BASE+2 (default 4322),
#                                            routes on BASE+2000.., monitoring on BASE+4000..;
#                                            each node's config, store and log under DIR/nN
#   infra/nats-cluster.sh stop DIR           SIGTERM every node, wait for each to exit
#   infra/nats-cluster.sh stop-node DIR N    stop node N (1..3) only: a node lost
#   infra/nats-cluster.sh start-node DIR N   start node N again on its store
#   infra/nats-cluster.sh status DIR         each node's pid and /healthz
#
# nats-server 2.9 (Debian's): separate client and cluster ports, explicit routes, one store
# directory per node, `server_name` set (JetStream clustering needs it). Run the services with
# NATS_URL set to the line `start` prints (every node, comma-separated; a client also learns the
# others from the cluster) and RP_BUS_REPLICAS=3.
set -euo pipefail

say() { printf 'nats-cluster: %s\n' "$*" >&2; }
usage() { sed -n '2,16p' "$0" >&2; exit 2; }

cmd=${1:-}; dir=${2:-}
[ -n "$cmd" ] && [ -n "$dir" ] || usage
command -v nats-server >/dev/null || { say "nats-server is not installed (infra/dev-up.sh)"; exit 1; }

reachable() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
base() { cat "$dir/base" 2>/dev/null || echo 4322; }
port() { echo $(( $(base) + $1 - 1 )); }          # client port of node N
route() { echo $(( $(base) + 2000 + $1 - 1 )); }  # cluster port
mon() { echo $(( $(base) + 4000 + $1 - 1 )); }    # monitoring port

write_config() { # N
  local n=$1 routes=""
  for m in 1 2 3; do
    [ "$m" = "$n" ] || routes="$routes${routes:+, }\"nats-route://127.0.0.1:$(route "$m")\""
  done
  mkdir -p "$dir/n$n/store"
  cat >"$dir/n$n/nats.conf" <<EOF
server_name: n$n
listen: 127.0.0.1:$(port "$n")
http: 127.0.0.1:$(mon "$n")
jetstream {
  store_dir: "$dir/n$n/store"
}
cluster {
  name: rp
  listen: 127.0.0.1:$(route "$n")
  routes: [ $routes ]
}
EOF
}

start_node() { # N
  local n=$1
  if [ -f "$dir/n$n/pid" ] && kill -0 "$(cat "$dir/n$n/pid")" 2>/dev/null; then
    say "n$n is running"; return 0
  fi
  nats-server -c "$dir/n$n/nats.conf" >>"$dir/n$n/log" 2>&1 &
  echo $! >"$dir/n$n/pid"
}

stop_node() { # N
  local n=$1 pid
  [ -f "$dir/n$n/pid" ] || return 0
  pid=$(cat "$dir/n$n/pid")
  if kill -TERM "$pid" 2>/dev/null; then
    for _ in $(seq 1 200); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then say "n$n did not exit in 20 s: killing it"; kill -KILL "$pid"; fi
  fi
  rm -f "$dir/n$n/pid"
}

healthy() { # N: JetStream up and current on the node (2.9's /healthz checks it)
  curl -fsS "http://127.0.0.1:$(mon "$1")/healthz" >/dev/null 2>&1
}

wait_healthy() {
  for _ in $(seq 1 300); do
    local ok=1
    for n in "$@"; do
      if ! kill -0 "$(cat "$dir/n$n/pid" 2>/dev/null || echo 0)" 2>/dev/null; then
        say "n$n exited: $(tail -n 3 "$dir/n$n/log")"; return 1
      fi
      healthy "$n" || ok=0
    done
    [ "$ok" = 1 ] && return 0
    sleep 0.1
  done
  say "the cluster did not become healthy within 30 s (logs: $dir/n*/log)"; return 1
}

urls() { echo "nats://127.0.0.1:$(port 1),nats://127.0.0.1:$(port 2),nats://127.0.0.1:$(port 3)"; }

case "$cmd" in
  start)
    mkdir -p "$dir"; dir=$(cd "$dir" && pwd)
    echo "${3:-4322}" >"$dir/base"
    for n in 1 2 3; do
      if reachable "$(port "$n")" && ! [ -f "$dir/n$n/pid" ]; then
        say "port $(port "$n") is taken: choose another BASE"; exit 1
      fi
      write_config "$n"
    done
    for n in 1 2 3; do start_node "$n"; done
    wait_healthy 1 2 3
    say "up: NATS_URL=$(urls) RP_BUS_REPLICAS=3"
    urls ;;
  stop)
    dir=$(cd "$dir" && pwd)
    for n in 1 2 3; do stop_node "$n"; done
    say "stopped (stores kept in $dir)" ;;
  stop-node)
    dir=$(cd "$dir" && pwd); stop_node "${3:?node 1..3}" ;;
  start-node)
    dir=$(cd "$dir" && pwd); start_node "${3:?node 1..3}"; wait_healthy "$3" ;;
  status)
    dir=$(cd "$dir" && pwd)
    for n in 1 2 3; do
      pid=$(cat "$dir/n$n/pid" 2>/dev/null || echo -)
      if healthy "$n"; then h=healthy; else h=down; fi
      echo "n$n pid=$pid client=$(port "$n") $h"
    done ;;
  *) usage ;;
esac
