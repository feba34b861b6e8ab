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

impl Runner {
    pub async fn start(settings: Settings, clock: SharedClock) -> anyhow::Result<Runner> {
        crate::tls::install_crypto_provider();
        let config = crate::config::parse_config(&settings.config_text)
            .context("reading the janitor configuration")?;
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

        // Bind before serving so a port clash is an error at start-up.
        let public_listener = match settings.public_port {
            Some(port) => Some(bind(&settings.listen_address, port).await?),
            None => None,
        };
        let admin_listener = bind(&settings.listen_address, settings.port).await?;

        let storage = crate::storage::Storage::from_settings(&settings)
            .await
            .context("setting up log and artifact storage")?;
        let app = Arc::new(App {
            db,
            redis,
            clock,
            settings,
            config,
            background: Background::default(),
            metrics: crate::metrics::Metrics::new(),
            storage,
            status: Default::default(),
        });

        let (shutdown, rx) = watch::channel(false);
        let mut servers = Vec::new();
        let public_addr = match public_listener {
            Some(l) => {
                let addr = l.local_addr()?;
                servers.push(serve(l, http::public::router(app.clone()), rx.clone()));
                Some(addr)
            }
            None => None,
        };
        let admin_addr = admin_listener.local_addr()?;
        servers.push(serve(admin_listener, http::admin::router(app.clone()), rx));

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

    pub fn trigger_shutdown(&self) {
        let _ = self.shutdown.send(true);
    }
}

async fn bind(address: &str, port: u16) -> anyhow::Result<TcpListener> {
    TcpListener::bind((address, port))
        .await
        .with_context(|| format!("binding {address}:{port}"))
}

fn serve(
    listener: TcpListener,
    router: axum::Router,
    mut shutdown: watch::Receiver<bool>,
) -> JoinHandle<std::io::Result<()>> {
    tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(async move {
                let _ = shutdown.wait_for(|stop| *stop).await;
            })
            .await
    })
}
