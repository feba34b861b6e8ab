//! `record`: scenario inputs against a live runner, written as goldens.

use janitor_harness::record;
use janitor_harness::scenario::{collect, Scenario};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// Runner command with placeholders: {config} {port} {public_port} {vcs}
    /// {logs} {artifacts} {run_timeout} {avoid_hosts} {dep_server_url} {apt_archive_url}
    /// {dep_server_url_flag} {apt_archive_url_flag}.
    #[arg(long)]
    pub target: String,
    #[arg(long, default_value = "golden")]
    pub out: PathBuf,
    #[arg(long, default_value_t = 1000)]
    pub settle_ms: u64,
    /// Scenario files or directories (default: scenarios/).
    pub scenarios: Vec<PathBuf>,
}

pub async fn run(args: Args) -> anyhow::Result<bool> {
    let paths = if args.scenarios.is_empty() {
        vec![janitor_harness::project_dir().join("scenarios")]
    } else {
        args.scenarios
    };
    let target = super::target_spec(&args.target, args.settle_ms);
    std::fs::create_dir_all(&args.out)?;
    let mut ok = true;
    for f in collect(&paths)? {
        let s = Scenario::load(&f)?;
        match record::record(&s, &target).await {
            Ok(recorded) => {
                let dest = args.out.join(format!("{}.json", s.name));
                std::fs::write(&dest, record::to_golden_json(&recorded)?)?;
                println!("{:<45} recorded -> {}", s.name, dest.display());
            }
            Err(e) => {
                ok = false;
                println!("{:<45} FAILED: {e:#}", s.name);
            }
        }
    }
    Ok(ok)
}
