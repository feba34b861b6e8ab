//! `janitor-harness`: replay goldens, record new ones, diff live runners.

mod cli;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "janitor-harness", about = "Parity harness for janitor-runner")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Replay recorded goldens against the in-process Rust runner (or --target).
    Replay(cli::replay::Args),
    /// Run scenario inputs against a live runner and write goldens.
    Record(cli::record::Args),
    /// Simulated workers looping assign → finish against a live runner.
    Load(cli::load::Args),
    /// Differential fuzzing: seeded random request sequences against two
    /// runners (`in-process` or a command as for `record`), differences
    /// shrunk and written as scenarios.
    Fuzz(cli::fuzz::Args),
    /// Run the same scenarios against two live runners and show differences.
    Diff(cli::diff::Args),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let outcome = rt.block_on(async {
        match cli.command {
            Cmd::Replay(args) => cli::replay::run(args).await,
            Cmd::Record(args) => cli::record::run(args).await,
            Cmd::Load(args) => cli::load::run(args).await,
            Cmd::Fuzz(args) => cli::fuzz::run(args).await,
            Cmd::Diff(args) => cli::diff::run(args).await,
        }
    });
    match outcome {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => std::process::ExitCode::FAILURE,
        Err(e) => {
            eprintln!("janitor-harness: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}
