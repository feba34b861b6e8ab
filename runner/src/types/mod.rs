//! Wire types (data-types.md), one file per family. Serialised through
//! `py::json` so the bytes match Python's `json.dumps`.

pub mod active_run;
pub mod result;
pub mod time;

pub use active_run::{ActiveRun, Backchannel};
