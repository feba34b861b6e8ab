//! Everything a runner instance needs to start: the parsed janitor.conf plus
//! the command-line options of the Python runner. Built by `main.rs` from
//! flags, or directly by the harness for in-process runs.

use std::path::PathBuf;

/// Fixed credentials instead of the standard chain: for in-process runners
/// of tests and the harness (changing the process environment would race
/// with other threads reading it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticCredentials {
    pub access_key_id: String,
    pub secret_access_key: String,
}

#[derive(Debug, Clone)]
pub struct Settings {
    /// Address both apps bind to (`--listen-address`).
    pub listen_address: String,
    /// Internal (admin) app port (`--port`); 0 picks a free port.
    pub port: u16,
    /// Public (worker-facing) app port (`--public-port`); `None` disables it.
    pub public_port: Option<u16>,
    pub database_url: String,
    pub redis_url: String,
    /// The janitor.conf text (protobuf text format).
    pub config_text: String,
    pub public_vcs_location: Option<String>,
    pub logs_location: Option<String>,
    pub artifact_location: Option<String>,
    pub backup_directory: Option<PathBuf>,
    /// `STORAGE_EMULATOR_HOST`: the GCS endpoint to use instead of Google's,
    /// with anonymous credentials (read from the environment by `main.rs`).
    pub storage_emulator_host: Option<String>,
    /// Fixed credentials for an S3 log store instead of the standard AWS
    /// chain (never set by `main.rs`; tests and the harness use it).
    pub s3_credentials: Option<StaticCredentials>,
    pub run_timeout_minutes: u64,
    pub avoid_hosts: Vec<String>,
    pub dep_server_url: Option<String>,
    pub apt_archive_url: Option<String>,
    pub use_cached_only: bool,
    /// Start the keepalive watchdog (the harness replays without it, as recorded).
    pub watchdog: bool,
    /// Database pool size.
    pub db_max_connections: u32,
    /// Most parts one finish upload may carry (`--max-upload-parts`).
    pub max_upload_parts: usize,
    /// Most bytes of files one finish upload may carry (`--max-upload-bytes`).
    pub max_upload_bytes: u64,
    /// Open connections per app; more are closed at once (`--max-connections`).
    pub max_connections: usize,
    /// A client must send a request's headers within this, idle keep-alive
    /// connections included (`--header-read-timeout`, seconds).
    pub header_read_timeout: std::time::Duration,
    /// How long a shutdown waits for in-flight requests (`--shutdown-timeout`).
    pub shutdown_timeout: std::time::Duration,
    /// Longest pause between two pieces of a request body
    /// (`--body-idle-timeout`, seconds).
    pub body_idle_timeout: std::time::Duration,
    /// Longest metric label value taken from a request; longer ones are cut
    /// (`--metric-label-max-length`).
    pub metric_label_max_length: usize,
    /// Distinct values a request-fed label may take per metric; later ones
    /// are counted under `other` (`--metric-label-max-values`).
    pub metric_label_max_values: usize,
}

/// Default of `--max-connections` (per app).
pub const DEFAULT_MAX_CONNECTIONS: usize = 4096;
/// Default of `--header-read-timeout`, seconds.
pub const DEFAULT_HEADER_READ_TIMEOUT: u64 = 30;
/// Default of `--shutdown-timeout`, seconds.
pub const DEFAULT_SHUTDOWN_TIMEOUT: u64 = 30;
/// Default of `--body-idle-timeout`, seconds: a worker on a slow link still
/// sends something every few seconds.
pub const DEFAULT_BODY_IDLE_TIMEOUT: u64 = 60;
/// Default of `--metric-label-max-length` (worker names are far shorter).
pub const DEFAULT_METRIC_LABEL_MAX_LENGTH: usize = 200;
/// Default of `--metric-label-max-values`: far above any fleet of workers.
pub const DEFAULT_METRIC_LABEL_MAX_VALUES: usize = 1000;

/// Default of `--max-upload-parts`: a Debian build uploads a few dozen files.
pub const DEFAULT_MAX_UPLOAD_PARTS: usize = 1000;
/// Default of `--max-upload-bytes`: far above any build's output, far below a
/// full disk.
pub const DEFAULT_MAX_UPLOAD_BYTES: u64 = 16 << 30;

impl Settings {
    pub fn new(database_url: impl Into<String>, redis_url: impl Into<String>) -> Self {
        Settings {
            listen_address: "localhost".into(),
            port: 9911,
            public_port: Some(9919),
            database_url: database_url.into(),
            redis_url: redis_url.into(),
            config_text: String::new(),
            public_vcs_location: None,
            logs_location: None,
            artifact_location: None,
            backup_directory: None,
            storage_emulator_host: None,
            s3_credentials: None,
            run_timeout_minutes: 60,
            avoid_hosts: Vec::new(),
            dep_server_url: None,
            apt_archive_url: None,
            use_cached_only: false,
            watchdog: true,
            db_max_connections: 10,
            max_upload_parts: DEFAULT_MAX_UPLOAD_PARTS,
            max_upload_bytes: DEFAULT_MAX_UPLOAD_BYTES,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            header_read_timeout: std::time::Duration::from_secs(DEFAULT_HEADER_READ_TIMEOUT),
            shutdown_timeout: std::time::Duration::from_secs(DEFAULT_SHUTDOWN_TIMEOUT),
            body_idle_timeout: std::time::Duration::from_secs(DEFAULT_BODY_IDLE_TIMEOUT),
            metric_label_max_length: DEFAULT_METRIC_LABEL_MAX_LENGTH,
            metric_label_max_values: DEFAULT_METRIC_LABEL_MAX_VALUES,
        }
    }
}
