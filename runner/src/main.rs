//! `janitor-runner`: the same command line as the Python runner's `main()`.

use clap::Parser;
use janitor_runner::clock;
use janitor_runner::server::Runner;
use janitor_runner::settings::Settings;
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "janitor-runner",
    about = "Hand queued jobs to workers and collect their results"
)]
struct Flags {
    /// Port of the internal app.
    #[arg(long, default_value_t = 9911)]
    port: u16,
    /// Port of the public (worker-facing) app; 0 disables it.
    #[arg(long = "public-port", default_value_t = 9919)]
    public_port: u16,
    #[arg(long = "listen-address", default_value = "localhost")]
    listen_address: String,
    /// Path to the janitor configuration (protobuf text format).
    #[arg(long, default_value = "janitor.conf")]
    config: PathBuf,
    /// Accepted for compatibility; unused (as in the Python runner).
    #[arg(long = "pre-check")]
    pre_check: Option<String>,
    /// Accepted for compatibility; unused (as in the Python runner).
    #[arg(long = "post-check")]
    post_check: Option<String>,
    #[arg(long = "use-cached-only")]
    use_cached_only: bool,
    #[arg(long = "backup-directory")]
    backup_directory: Option<PathBuf>,
    #[arg(long = "public-apt-archive-location")]
    public_apt_archive_location: Option<String>,
    #[arg(long = "public-dep-server-url")]
    public_dep_server_url: Option<String>,
    #[arg(long = "public-vcs-location", required = true)]
    public_vcs_location: String,
    /// Time before a silent run is considered dead, in minutes.
    #[arg(long = "run-timeout", default_value_t = 60)]
    run_timeout: u64,
    #[arg(long = "avoid-host")]
    avoid_host: Vec<String>,
    #[arg(long = "gcp-logging")]
    gcp_logging: bool,
    #[arg(long)]
    debug: bool,
    /// Start without the keepalive watchdog (the goldens were recorded
    /// without one, so replays of any runner are comparable; not for
    /// production).
    #[arg(long = "no-watchdog")]
    no_watchdog: bool,
    /// Open connections per app; a connection past it is closed at once.
    #[arg(long = "max-connections", default_value_t = janitor_runner::settings::DEFAULT_MAX_CONNECTIONS)]
    max_connections: usize,
    /// Seconds a client has to send a request's headers (idle keep-alive
    /// connections are closed after it too).
    #[arg(long = "header-read-timeout", default_value_t = janitor_runner::settings::DEFAULT_HEADER_READ_TIMEOUT)]
    header_read_timeout: u64,
    /// Seconds a shutdown (SIGTERM) waits for in-flight requests.
    #[arg(long = "shutdown-timeout", default_value_t = janitor_runner::settings::DEFAULT_SHUTDOWN_TIMEOUT)]
    shutdown_timeout: u64,
    /// Most parts (files) one finish upload may carry; more is a 400.
    #[arg(long = "max-upload-parts", default_value_t = janitor_runner::settings::DEFAULT_MAX_UPLOAD_PARTS)]
    max_upload_parts: usize,
    /// Most bytes of files one finish upload may carry; more is a 400.
    #[arg(long = "max-upload-bytes", default_value_t = janitor_runner::settings::DEFAULT_MAX_UPLOAD_BYTES)]
    max_upload_bytes: u64,
    /// Seconds a request body may pause between two pieces; then the
    /// request is refused (408 for an upload).
    #[arg(long = "body-idle-timeout", default_value_t = janitor_runner::settings::DEFAULT_BODY_IDLE_TIMEOUT)]
    body_idle_timeout: u64,
    /// Longest metric label value taken from a request (worker names,
    /// result codes, hosts); longer ones are cut.
    #[arg(long = "metric-label-max-length", default_value_t = janitor_runner::settings::DEFAULT_METRIC_LABEL_MAX_LENGTH)]
    metric_label_max_length: usize,
    /// Distinct values each request-fed metric label may take; later values
    /// are counted under `other`.
    #[arg(long = "metric-label-max-values", default_value_t = janitor_runner::settings::DEFAULT_METRIC_LABEL_MAX_VALUES)]
    metric_label_max_values: usize,
}

fn main() -> std::process::ExitCode {
    let flags = Flags::parse();
    let filter = if flags.debug { "debug" } else { "info" };
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(filter)),
        )
        .with_writer(std::io::stderr)
        // Escape codes only for a person at a terminal, never in log files.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    if flags.gcp_logging {
        // Cloud Logging parses one JSON object per line from stderr.
        subscriber.json().init();
    } else {
        subscriber.init();
    }
    if !flags.config.exists() {
        Flags::command_error(format!(
            "config path {} does not exist",
            flags.config.display()
        ));
    }
    janitor_runner::tls::install_crypto_provider();
    janitor_runner::server::raise_fd_limit();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    match runtime.block_on(run(flags)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("janitor-runner: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

impl Flags {
    fn command_error(message: String) -> ! {
        use clap::CommandFactory;
        Flags::command()
            .error(clap::error::ErrorKind::ValueValidation, message)
            .exit()
    }
}

async fn run(flags: Flags) -> anyhow::Result<()> {
    let config_text = std::fs::read_to_string(&flags.config)?;
    let config = janitor_runner::config::read_config(&flags.config)?;
    let database_url = config.database_location.clone().ok_or_else(|| {
        anyhow::anyhow!("{}: database_location is not set", flags.config.display())
    })?;
    let redis_url = config
        .redis_location
        .clone()
        .ok_or_else(|| anyhow::anyhow!("{}: redis_location is not set", flags.config.display()))?;
    let mut settings = Settings::new(database_url, redis_url);
    settings.listen_address = flags.listen_address;
    settings.port = flags.port;
    settings.public_port = (flags.public_port != 0).then_some(flags.public_port);
    settings.logs_location = config.logs_location.clone();
    settings.artifact_location = config.artifact_location.clone();
    settings.config_text = config_text;
    settings.public_vcs_location = Some(flags.public_vcs_location);
    settings.backup_directory = flags.backup_directory;
    // Read where gcloud-aio reads it, so the same environment works for both.
    settings.storage_emulator_host = std::env::var("STORAGE_EMULATOR_HOST").ok();
    settings.run_timeout_minutes = flags.run_timeout;
    settings.avoid_hosts = flags.avoid_host;
    settings.dep_server_url = flags.public_dep_server_url;
    settings.apt_archive_url = flags.public_apt_archive_location;
    settings.use_cached_only = flags.use_cached_only;
    settings.watchdog = !flags.no_watchdog;
    settings.max_connections = flags.max_connections;
    settings.header_read_timeout = std::time::Duration::from_secs(flags.header_read_timeout);
    settings.shutdown_timeout = std::time::Duration::from_secs(flags.shutdown_timeout);
    settings.max_upload_parts = flags.max_upload_parts;
    settings.max_upload_bytes = flags.max_upload_bytes;
    settings.body_idle_timeout = std::time::Duration::from_secs(flags.body_idle_timeout);
    settings.metric_label_max_length = flags.metric_label_max_length;
    settings.metric_label_max_values = flags.metric_label_max_values;
    let _ = (flags.pre_check, flags.post_check);

    let mut runner = Runner::start(settings, clock::system()).await?;
    tracing::info!(admin = %runner.admin_addr, public = ?runner.public_addr, "runner listening");
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        res = runner.wait() => return res,
        _ = sigterm.recv() => tracing::info!("SIGTERM: finishing in-flight requests"),
        _ = tokio::signal::ctrl_c() => tracing::info!("interrupted: finishing in-flight requests"),
    }
    runner.shutdown().await
}
