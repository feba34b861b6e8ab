//! janitor-runner: a Rust re-implementation of the Janitor runner.
//!
//! The crate is the whole service; `main.rs` only turns command-line flags
//! into [`settings::Settings`] and calls [`server::Runner::start`].

pub mod clock;
pub mod config;
pub mod http;
pub mod pyjson;
pub mod server;
pub mod settings;
pub mod app;
pub mod background;
pub mod metrics;
pub mod assign;
pub mod auth;
pub mod backchannel;
pub mod db;
pub mod finish;
pub mod schedule;
pub mod state;
pub mod storage;
pub mod types;
pub mod vcs;
pub mod watchdog;
pub mod pyrepr;
pub mod urlutils;
