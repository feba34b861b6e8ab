//! The harness's integration tests in one binary: each file was its own
//! test binary, and linking the runner (with its embedded Python) twenty
//! times dominated the build on small machines. Kept apart: `golden`
//! (its own test harness), `resume` (registers a fake forge in the embedded
//! Python, process-wide), `finish_memory` and `gcs_memory` (they measure
//! the process's peak memory).

mod assign;
mod chaos;
mod claim_two_runners;
mod finish_rules;
mod fuzz;
mod hostile_input;
mod malformed_input;
mod numeric_input;
mod record;
mod scheduling;
mod schema;
mod services;
mod shared_selection;
mod snapshots;
mod status_publications;
mod storage;
mod watchdog;
mod wire_types;
mod worker_contract;
mod worker_safety;
