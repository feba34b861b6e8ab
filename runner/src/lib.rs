//! janitor-runner: a Rust re-implementation of the Janitor runner.
//!
//! The crate is the whole service; `main.rs` only turns command-line flags
//! into [`settings::Settings`] and calls [`server::Runner::start`].

pub mod app;
pub mod assign;
pub mod auth;
pub mod backchannel;
pub mod background;
pub mod clock;
pub mod config;
pub mod db;
pub mod dependency;
pub mod finish;
pub mod http;
pub mod metrics;
pub mod py;
pub mod schedule;
pub mod server;
pub mod settings;
pub mod state;
pub mod storage;
#[cfg(test)]
mod test_redis;
pub mod tls;
pub mod types;
pub mod urlutils;
pub mod validate;
pub mod vcs;
pub mod watchdog;
