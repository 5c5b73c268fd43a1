//! The Flink and Flink CDC task types against a real Flink cluster (started once per
//! test run by `tests/run.sh`, see `tests/flink/cluster.sh`), through real `shoal`
//! processes: a workflow mixing Shell, Http, Flink and Flink CDC; savepoints and stops
//! through the CLI and the API; stopping and killing cancelling jobs in Flink; a
//! restart resuming from the last savepoint; and re-attaching to the same job after the
//! process (or, in distributed mode, the worker) that followed it was SIGKILLed.
//!
//! Without a cluster (`SHOAL_FLINK_URL` unset) the tests say SKIPPED loudly; under
//! CI=true that is a failure.

mod example;
mod harness;
mod mixed;
mod reattach;
mod stop;
