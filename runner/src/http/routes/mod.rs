//! Route handlers, one module per resource. Handlers stay thin: parse the
//! request, call a domain function, shape the response.

pub mod active_runs;
pub mod candidates;
pub mod codebases;
pub mod fields;
pub mod finish;
pub mod logs;
pub mod metrics;
pub mod public_runs;
pub mod queue;
pub mod runs;
pub mod schedule;
pub mod status;
