//! Starting and stopping a runner instance: both listeners, the shared
//! [`App`], and graceful shutdown. Used by `main.rs` and, in process, by the
//! parity harness.

use crate::app::App;
use crate::background::Background;
use crate::clock::SharedClock;
use crate::http;
use crate::settings::Settings;
use anyhow::Context;
use sqlx::postgres::PgPoolOptions;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub struct Runner {
    pub admin_addr: SocketAddr,
    pub public_addr: Option<SocketAddr>,
    pub app: Arc<App>,
    shutdown: watch::Sender<bool>,
    servers: Vec<JoinHandle<std::io::Result<()>>>,
    watchdog: Option<JoinHandle<()>>,
    reupload: Option<JoinHandle<()>>,
}

/// The database pool and the Redis connection (a warning when Redis does
/// not persist what the runner writes).
async fn connect(
    settings: &Settings,
) -> anyhow::Result<(sqlx::PgPool, redis::aio::ConnectionManager)> {
    let db = PgPoolOptions::new()
        .max_connections(settings.db_max_connections)
        // While PostgreSQL is away a request fails within seconds (503)
        // instead of queueing for sqlx's default 30 s.
        .acquire_timeout(std::time::Duration::from_secs(5))
        .connect(&settings.database_url)
        .await
        .with_context(|| "connecting to the database")?;
    let redis_client =
        redis::Client::open(settings.redis_url.as_str()).context("parsing the Redis URL")?;
    let redis = redis::aio::ConnectionManager::new_with_config(
        redis_client,
        crate::state::connection_config(),
    )
    .await
    .context("connecting to Redis")?;
    crate::state::warn_without_persistence(&mut redis.clone()).await;
    Ok((db, redis))
}

impl Runner {
    pub async fn start(settings: Settings, clock: SharedClock) -> anyhow::Result<Runner> {
        Self::start_with_opener(settings, clock, Arc::new(crate::vcs::DefaultOpener)).await
    }

    /// [`Runner::start`] with the given branch opener (a test double).
    pub async fn start_with_opener(
        settings: Settings,
        clock: SharedClock,
        opener: Arc<dyn crate::vcs::BranchOpener>,
    ) -> anyhow::Result<Runner> {
        crate::tls::install_crypto_provider();
        let vcs_managers = match settings.public_vcs_location.as_deref() {
            None | Some("") => Vec::new(),
            Some(loc) => crate::vcs::parse_managers(loc)
                .with_context(|| format!("--public-vcs-location {loc}"))?,
        };
        let config = crate::config::parse_config(&settings.config_text)
            .context("reading the janitor configuration")?;
        let (db, redis) = connect(&settings).await?;

        // Bind before serving so a port clash is an error at start-up.
        let public_listener = match settings.public_port {
            Some(port) => Some(bind(&settings.listen_address, port).await?),
            None => None,
        };
        let admin_listener = bind(&settings.listen_address, settings.port).await?;

        let storage = crate::storage::Storage::from_settings(&settings)
            .await
            .context("setting up log and artifact storage")?;
        let metrics = Arc::new(crate::metrics::Metrics::with_label_bounds(
            settings.metric_label_max_length,
            settings.metric_label_max_values,
        ));
        let background = Background::default();
        let runs = crate::state::RunStore::new(
            redis,
            clock.clone(),
            metrics.clone(),
            background.clone(),
            settings.run_timeout_minutes,
            settings.avoid_hosts.clone(),
        );
        let app = Arc::new(App {
            db,
            runs,
            clock,
            settings,
            config,
            background,
            metrics,
            storage,
            opener,
            vcs_managers,
            selection: Default::default(),
        });

        let (shutdown, rx) = watch::channel(false);
        let mut servers = Vec::new();
        let public_addr = match public_listener {
            Some(l) => {
                let addr = l.local_addr()?;
                servers.push(serve(
                    l,
                    http::public::router(app.clone()),
                    rx.clone(),
                    ServeLimits::of(&app.settings),
                ));
                Some(addr)
            }
            None => None,
        };
        let admin_addr = admin_listener.local_addr()?;
        servers.push(serve(
            admin_listener,
            http::admin::router(app.clone()),
            rx,
            ServeLimits::of(&app.settings),
        ));

        // Active runs live in Redis, so a restarted runner resumes watching them.
        let watchdog = app
            .settings
            .watchdog
            .then(|| crate::watchdog::spawn(app.clone()));

        // Backed-up logs and artifacts go back to the primary stores.
        let reupload = app.storage.backup_dir.is_some().then(|| {
            crate::storage::backup::spawn(
                app.storage.clone(),
                crate::storage::backup::REUPLOAD_PERIOD,
                shutdown.subscribe(),
            )
        });

        Ok(Runner {
            watchdog,
            reupload,
            admin_addr,
            public_addr,
            app,
            shutdown,
            servers,
        })
    }

    /// Waits until no background job (e.g. the post-finish reschedule) runs.
    pub async fn background_idle(&self) {
        self.app.background.idle().await;
    }

    /// Stops accepting connections, lets in-flight requests finish, then
    /// waits for background jobs.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        let _ = self.shutdown.send(true);
        if let Some(w) = &self.watchdog {
            w.abort();
        }
        // Stops at the shutdown signal; a pass cut short only leaves copies
        // in the backup, moved again next start.
        if let Some(r) = self.reupload {
            let _ = r.await;
        }
        for server in self.servers {
            server.await??;
        }
        self.app.background.idle().await;
        self.app.db.close().await;
        Ok(())
    }

    /// Resolves when either server stops on its own (an error).
    pub async fn wait(&mut self) -> anyhow::Result<()> {
        let (res, _, _) = futures::future::select_all(self.servers.iter_mut()).await;
        res??;
        Ok(())
    }
}

async fn bind(address: &str, port: u16) -> anyhow::Result<TcpListener> {
    TcpListener::bind((address, port))
        .await
        .with_context(|| format!("binding {address}:{port}"))
}

/// What one app's accept loop enforces (flags of the same names).
#[derive(Debug, Clone, Copy)]
struct ServeLimits {
    max_connections: usize,
    header_read_timeout: std::time::Duration,
    shutdown_timeout: std::time::Duration,
    body_idle_timeout: std::time::Duration,
}

impl ServeLimits {
    fn of(s: &Settings) -> ServeLimits {
        ServeLimits {
            max_connections: s.max_connections,
            header_read_timeout: s.header_read_timeout,
            shutdown_timeout: s.shutdown_timeout,
            body_idle_timeout: s.body_idle_timeout,
        }
    }
}

/// The accept loop of one app. Written on hyper directly rather than with
/// `axum::serve`, which offers no header-read timeout, connection limit or
/// shutdown deadline: a client that never finishes its headers (or an idle
/// keep-alive connection) is closed after `header_read_timeout`, connections
/// past `max_connections` are closed at once, a request body idle longer than
/// `body_idle_timeout` fails, accept errors (EMFILE) are
/// logged and retried after a pause, and a shutdown waits for in-flight
/// requests at most `shutdown_timeout`.
fn serve(
    listener: TcpListener,
    router: axum::Router,
    mut shutdown: watch::Receiver<bool>,
    limits: ServeLimits,
) -> JoinHandle<std::io::Result<()>> {
    use hyper_util::rt::{TokioIo, TokioTimer};
    tokio::spawn(async move {
        let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
        let graceful = hyper_util::server::graceful::GracefulShutdown::new();
        loop {
            let (stream, _) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(conn) => conn,
                    Err(e) => {
                        tracing::warn!(error = %e, "accepting a connection failed");
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                        continue;
                    }
                },
                _ = async { shutdown.wait_for(|stop| *stop).await.map(|_| ()) } => break,
            };
            let Ok(slot) = slots.clone().try_acquire_owned() else {
                tracing::warn!(
                    limit = limits.max_connections,
                    "connection limit reached; closing a new connection"
                );
                continue;
            };
            // A body that pauses longer than `body_idle_timeout` between two
            // frames fails its reader (tower-http restarts the timer on each
            // frame), so an upload that stops sending frees its slot.
            let service = hyper_util::service::TowerToHyperService::new(
                tower::ServiceBuilder::new()
                    .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(
                        limits.body_idle_timeout,
                    ))
                    .service(router.clone()),
            );
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_read_timeout)
                .serve_connection(TokioIo::new(stream), service);
            let conn = graceful.watch(conn);
            tokio::spawn(async move {
                let _ = conn.await;
                drop(slot);
            });
        }
        drop(listener);
        if tokio::time::timeout(limits.shutdown_timeout, graceful.shutdown())
            .await
            .is_err()
        {
            tracing::warn!(timeout = ?limits.shutdown_timeout, "shutdown deadline reached; closing connections with requests in flight");
        }
        Ok(())
    })
}

/// Raise the soft limit on open files to the hard limit: every connection
/// and upload holds descriptors, and the default soft limit (1024) is far
/// below what a busy runner needs.
pub fn raise_fd_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain syscalls on a stack value.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) != 0 {
                tracing::warn!("could not raise the open-file limit");
            }
        }
    }
}
