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
