# The two commands a newcomer needs: `make run` and `make test`.
CARGO ?= cargo
SHELL := /bin/bash

.PHONY: run test test-alerts contract lint bench infra build fmt clean-test-dbs

## Bring up PostgreSQL and NATS when missing, build, start every service, show it working.
## A release build: the first full cycle of the typical workspace takes ~16 s there and over a
## minute in a debug build (docs/benchmarks.md, "First full cycle").
run: infra
	$(CARGO) build --release --workspace --bins
	@BIN=target/release bash infra/run.sh

## The whole test suite against real PostgreSQL and NATS (brought up when missing), and the
## alert rules' tests.
test: infra test-alerts
	$(CARGO) build --workspace --bins
	$(CARGO) test --workspace --no-fail-fast

## The alert rules (infra/prometheus/alerts.yml): valid, and every rule's unit tests.
test-alerts: infra
	promtool check rules infra/prometheus/alerts.yml
	promtool test rules infra/prometheus/alerts_test.yml

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

build:
	$(CARGO) build --workspace --bins

fmt:
	$(CARGO) fmt --all

## Drop databases left by interrupted test runs.
clean-test-dbs:
	@for d in $$(psql -h 127.0.0.1 -U postgres -Atc "select datname from pg_database where datname like 'rp_test%'"); do \
		psql -h 127.0.0.1 -U postgres -qc "drop database \"$$d\" with (force)"; done
