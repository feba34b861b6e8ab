//! janitor-harness: replays scenarios recorded from the Python runner against
//! janitor-runner (or any live runner) through real PostgreSQL, Redis and a
//! GCS emulator, and diffs everything a client could observe.

pub mod catalog;
pub mod check;
pub mod compare;
pub mod fixtures;
pub mod fuzz;
pub mod ledger;
pub mod load;
pub mod normalize;
pub mod record;
pub mod replay;
pub mod report;
pub mod scenario;
pub mod services;
pub mod target;
pub mod testing;
pub mod worker_load;

use std::path::PathBuf;

/// The project's top directory (where golden/ and scenarios/ live).
pub fn project_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

pub fn golden_dir() -> PathBuf {
    project_dir().join("golden")
}
