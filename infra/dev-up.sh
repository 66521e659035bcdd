#!/usr/bin/env bash
# Makes sure PostgreSQL and NATS (with JetStream) are reachable for local runs, tests and CI.
# When one is not reachable at its configured address and it is local, start it; when it is not
# installed, install it from the OS packages (as root, unless RP_NO_INSTALL=1), or print exactly
# what to install. Also installs Prometheus (prometheus and promtool) the same way, for the
# metrics scrape test and the alert rules' tests; it is never started here (tests start their
# own). Also installs Node.js/npm (the page's toolchain, `make web`) and Debian's chromium (the
# browser tests drive it; no browser is downloaded) when missing. Safe to run again and again.
set -euo pipefail

PG_HOST=${PGHOST:-127.0.0.1}
PG_PORT=${PGPORT:-5432}
NATS_HOST=${NATS_HOST:-127.0.0.1}
NATS_PORT=${NATS_PORT:-4222}
NATS_STORE=${NATS_STORE:-/var/lib/nats-server}

say() { printf 'dev-up: %s\n' "$*" >&2; }
reachable() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }
wait_for() { # host port name
  for _ in $(seq 1 100); do reachable "$1" "$2" && return 0; sleep 0.1; done
  say "$3 did not come up on $1:$2"; return 1
}
can_install() { [ "$(id -u)" = 0 ] && [ "${RP_NO_INSTALL:-0}" != 1 ] && command -v apt-get >/dev/null; }
apt_install() {
  if can_install; then
    say "installing $*"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
  else
    say "missing: install them with: sudo apt-get install -y $*"; exit 1
  fi
}

# --- PostgreSQL -------------------------------------------------------------------------------
if reachable "$PG_HOST" "$PG_PORT"; then
  say "PostgreSQL is up on $PG_HOST:$PG_PORT"
else
  command -v pg_ctlcluster >/dev/null || apt_install postgresql
  clusters=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1)
  if [ -z "$clusters" ]; then say "no PostgreSQL cluster found under /etc/postgresql"; exit 1; fi
  say "starting PostgreSQL $clusters"
  pg_ctlcluster --skip-systemctl-redirect "$clusters" main start || true
  wait_for "$PG_HOST" "$PG_PORT" PostgreSQL
fi

# --- NATS with JetStream ----------------------------------------------------------------------
if reachable "$NATS_HOST" "$NATS_PORT"; then
  say "NATS is up on $NATS_HOST:$NATS_PORT"
else
  command -v nats-server >/dev/null || [ -x /usr/sbin/nats-server ] || apt_install nats-server
  bin=$(command -v nats-server || echo /usr/sbin/nats-server)
  mkdir -p "$NATS_STORE"
  say "starting nats-server with JetStream"
  start-stop-daemon --start --oknodo --background --exec "$bin" -- \
    -a "$NATS_HOST" -p "$NATS_PORT" -js -sd "$NATS_STORE" -l /var/log/nats-server.log
  wait_for "$NATS_HOST" "$NATS_PORT" NATS
fi

# --- Prometheus (binaries only: the tests start their own server) ------------------------------
if command -v promtool >/dev/null && { command -v prometheus >/dev/null || [ -x /usr/bin/prometheus ]; }; then
  say "prometheus and promtool are installed"
else
  apt_install --no-install-recommends prometheus
  # Where systemd runs, the package starts a system-wide Prometheus; nothing here needs it.
  if command -v systemctl >/dev/null && systemctl is-active --quiet prometheus 2>/dev/null; then
    systemctl disable --now prometheus >/dev/null 2>&1 || true
  fi
fi

# --- The page's toolchain and the browser tests' Chromium -------------------------------------
if command -v node >/dev/null && command -v npm >/dev/null; then
  say "node $(node --version) and npm are installed"
else
  apt_install --no-install-recommends nodejs npm
fi
if [ -x "${CHROMIUM:-/usr/bin/chromium}" ]; then
  say "chromium is installed"
else
  apt_install --no-install-recommends chromium fonts-dejavu-core
fi
