# The two commands a newcomer needs: `make run` and `make test`.
CARGO ?= cargo
SHELL := /bin/bash

.PHONY: run test test-alerts chaos cluster-test load storage contract lint bench infra build fmt clean-test-dbs web

## Bring up PostgreSQL and NATS when missing, build, start every service, show it working.
## A release build: the first full cycle of the typical workspace takes ~16 s there and over a
## minute in a debug build (docs/benchmarks.md, "First full cycle").
run: infra web
	$(CARGO) build --release --workspace --bins
	@BIN=target/release bash infra/run.sh

## The whole test suite against real PostgreSQL and NATS (brought up when missing), the alert
## rules' tests, and the page's browser tests (headless Chromium; e2e tests/web_browser.rs).
test: infra test-alerts web
	$(CARGO) build --workspace --bins
	$(CARGO) test --workspace --no-fail-fast

## The alert rules (infra/prometheus/alerts.yml): valid, and every rule's unit tests.
test-alerts: infra
	promtool check rules infra/prometheus/alerts.yml
	promtool test rules infra/prometheus/alerts_test.yml

## Real faults during a sync against the real processes, each on a fresh system, and proof that
## every one is recovered from (services/e2e/tests/chaos.rs, docs/reliability.md "Chaos"): kill -9
## of each service, nats-server and PostgreSQL restarts (their own servers, never the shared ones),
## PostgreSQL unreachable past the retry schedules, a HubSpot outage, an event replay. Prints a
## table and the totals; fails on any failure. About 7 minutes; no round starts after 12.
## Not part of `make test`. CHAOS_ONLY=kill-matcher,replay runs some; CHAOS_SEED repeats a draw.
chaos: infra
	$(CARGO) build --workspace --bins
	RUST_LOG=$${RUST_LOG:-error} $(CARGO) test -p e2e --test chaos -- --ignored --test-threads=1 --nocapture

## Two replicas of every service on a three-node NATS cluster of its own (JetStream, the stream
## with 3 replicas; infra/nats-cluster.sh is the same layout for people), 10 workspaces syncing
## LinkedIn and HubSpot: work shared (each replica's handled count printed), per-workspace order
## held, and kill -9 of a replica, the stream leader's node stopped, and both at once, each
## recovered with every dashboard equal to the undisturbed one (services/e2e/tests/cluster.rs).
## About 2 minutes; not part of `make test`. CLUSTER_WORKSPACES=20 runs more.
cluster-test: infra
	$(CARGO) build --workspace --bins
	RUST_LOG=$${RUST_LOG:-error} $(CARGO) test -p e2e --test cluster -- --ignored --test-threads=1 --nocapture

## N workspaces at once (LOAD_WORKSPACES, default 10,100; 10,100,1000 for the whole curve; small
## data, LOAD_COMPANIES=300), each level on a fresh system in a release build: Sync Now on every
## integration, then the shared daily slot. Prints runs per minute, p50/p95/max run duration,
## every service's peak memory, dashboards differing (must be 0) and failures (must be 0)
## (services/e2e/tests/load.rs; the curve is in docs/benchmarks.md). Not part of `make test`.
load: infra
	$(CARGO) build --release --workspace --bins
	RUST_LOG=$${RUST_LOG:-error} $(CARGO) test --release -p e2e --test load -- --ignored --test-threads=1 --nocapture

## Storage that stays flat (issue 16, docs/storage.md): a typical workspace (LinkedIn and HubSpot)
## synced once, then STORAGE_DAYS (30) days of incremental syncs with 1% of records changed a day
## (the sandbox clock moved a day each), on a fresh system in a release build. Prints bytes per
## table after the first sync and at the end (after a plain VACUUM ANALYZE, as autovacuum would),
## the owners' totals, the log's growth a day and the indexes used; fails when the total grew past
## 1.3x or the projections pass 3x the event log, naming the tables (services/e2e/tests/storage.rs).
## Not part of `make test`. STORAGE_COMPANIES=5000 STORAGE_DAYS=5 for a quick run.
storage: infra
	$(CARGO) build --release --workspace --bins
	RUST_LOG=$${RUST_LOG:-error} $(CARGO) test --release -p e2e --test storage -- --ignored --test-threads=1 --nocapture

## The providers' own client libraries (HubSpot, LinkedIn, Salesforce; Python, pinned) against
## the sandbox: fails on any divergence from the real APIs (infra/contract/README.md). Needs no
## PostgreSQL or NATS; installs its venv in target/contract-venv on the first run.
contract:
	@CARGO=$(CARGO) bash infra/contract/run.sh

## fmt --check and clippy -D warnings.
lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

## Benchmarks; figures go to docs/benchmarks.md by hand, with machine and date.
bench: infra
	$(CARGO) bench -p rp-platform --bench spine
	$(CARGO) bench -p matcher --bench matcher-bench
	$(CARGO) bench -p connector --bench connector-bench
	$(CARGO) test --release -p attribution --test scale -- --ignored --nocapture
	$(CARGO) build --release --workspace --bins
	bash infra/cycle-bench.sh

infra:
	@bash infra/dev-up.sh

## The page (services/web/ui): its pinned npm toolchain installed locally (npm ci, only when
## package-lock.json changed), the client generated from proto/, type-checked and bundled into
## services/web/ui/dist, which the `web` binary serves.
UI := services/web/ui
web:
	@cd $(UI) && { [ node_modules/.package-lock.json -nt package-lock.json ] || npm ci --no-audit --no-fund; }
	@cd $(UI) && npm run --silent build

build:
	$(CARGO) build --workspace --bins

fmt:
	$(CARGO) fmt --all

## Drop databases left by interrupted test runs.
clean-test-dbs:
	@for d in $$(psql -h 127.0.0.1 -U postgres -Atc "select datname from pg_database where datname like 'rp_test%'"); do \
		psql -h 127.0.0.1 -U postgres -qc "drop database \"$$d\" with (force)"; done
