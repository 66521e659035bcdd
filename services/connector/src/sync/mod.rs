//! The sync run's home: the run as a pure aggregate, its commands and the orchestrator, the
//! daily scheduler and its schedule maths, the projection it keeps, and the `rp.api.v1.Sync`
//! gRPC service (docs/sync.md).
//!
//! | module | what |
//! |---|---|
//! | [`domain`] | `SyncRun`, `RunState`, `decide`, `apply`: every rule of a run's life, no I/O |
//! | [`handlers`] | Sync Now and the scheduler's request (load, decide, append), the orchestrator consumer |
//! | [`scheduler`], [`schedule`] | the daily scheduler; slots, DST, catch-up and the clock |
//! | [`metrics`] | runs by provider, trigger and outcome, step durations, failures by kind, live runs |
//! | [`store`] | the only writer of `sync_integrations`, `sync_runs`, `sync_run_steps` |
//! | [`api`] | gRPC `rp.api.v1.Sync`: health, Watch, Sync Now, schedules, run history |
//! | [`watch`] | one health LISTEN per process, fanned out to every Watch |
//! | [`watchdog`] | stalled runs and runs with a dead-lettered event are failed, never left running |

pub mod api;
pub mod domain;
pub mod handlers;
pub mod metrics;
pub mod schedule;
pub mod scheduler;
pub mod store;
pub mod watch;
pub mod watchdog;
