//! PostgreSQL for tests: one server per harness process (an existing one named
//! by `JANITOR_TEST_DATABASE_URL`, a container, or a spawned `postgres`), one
//! migrated template database, and a fresh clone of it per scenario.

use super::process::{free_port, is_root, lookup_user, server_dir, OwnedProcess};
use super::Provider;
use anyhow::{bail, Context};
use sqlx::{Connection, Executor, PgConnection};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub const DATABASE_URL_ENV: &str = "JANITOR_TEST_DATABASE_URL";

/// The project's migrations, embedded at build time.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");

#[derive(Debug)]
pub struct PostgresServer {
    /// URL of the server's maintenance database (`postgres`).
    admin_url: url::Url,
    template: String,
    _process: Option<OwnedProcess>,
    spawned: Option<Spawned>,
    #[allow(dead_code)]
    container: Option<super::containers::ContainerGuard>,
    pub provider: Provider,
    pub startup: Duration,
}

static CLONES: AtomicUsize = AtomicUsize::new(0);

impl PostgresServer {
    pub async fn start(provider: Provider) -> anyhow::Result<PostgresServer> {
        let t0 = Instant::now();
        let mut container = None;
        let (admin_url, process, spawned) = match &provider {
            Provider::Env(url) => (url::Url::parse(url).context(DATABASE_URL_ENV)?, None, None),
            Provider::Container => {
                let (url, guard) = super::containers::postgres().await?;
                container = Some(guard);
                (url, None, None)
            }
            Provider::Spawn => {
                let (url, p, spawned) = spawn_postgres().await?;
                (url, Some(p), Some(spawned))
            }
        };
        let template = template_name();
        let mut server = PostgresServer {
            admin_url,
            template,
            _process: process,
            spawned,
            container,
            provider,
            startup: Duration::ZERO,
        };
        server.ensure_template().await?;
        server.startup = t0.elapsed();
        Ok(server)
    }

    /// A spawned server killed (SIGKILL, as a crash), down for `pause`, then
    /// started again on the same port and data directory (chaos tests use a
    /// private server for this, never the shared one).
    pub async fn restart(&mut self, pause: Duration) -> anyhow::Result<()> {
        let spawned = self
            .spawned
            .clone()
            .ok_or_else(|| anyhow::anyhow!("only a spawned server can be restarted"))?;
        let dir = spawned.data.parent().map(std::path::Path::to_path_buf);
        if let Some(old) = self._process.take() {
            old.disarm(); // killed and reaped; the data directory stays
        }
        tokio::time::sleep(pause).await;
        let pg = postgres_command(
            &spawned.bindir,
            &spawned.data,
            &spawned.sockets,
            spawned.port,
            spawned.owner,
        );
        let proc = OwnedProcess::spawn(pg, dir, libc::SIGQUIT)?;
        self._process = Some(proc);
        let deadline = Instant::now() + Duration::from_secs(30);
        while PgConnection::connect(self.admin_url.as_str())
            .await
            .is_err()
        {
            if Instant::now() > deadline {
                bail!("restarted postgres did not accept connections within 30 s");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    }

    pub fn url_for(&self, database: &str) -> String {
        let mut u = self.admin_url.clone();
        u.set_path(&format!("/{database}"));
        u.to_string()
    }

    async fn admin(&self) -> anyhow::Result<PgConnection> {
        PgConnection::connect(self.admin_url.as_str())
            .await
            .with_context(|| format!("connecting to {}", redact(&self.admin_url)))
    }

    /// The template is named after a hash of the migrations, so a server that
    /// outlives one run (an env-provided one) is migrated again only when they change.
    async fn ensure_template(&self) -> anyhow::Result<()> {
        let mut admin = self.admin().await?;
        let exists: Option<i32> = sqlx::query_scalar(
            "SELECT 1 FROM pg_database WHERE datname = $1 AND NOT datallowconn = false",
        )
        .bind(&self.template)
        .fetch_optional(&mut admin)
        .await?;
        if exists.is_some() {
            return Ok(());
        }
        let building = format!("{}_build_{}", self.template, std::process::id());
        admin
            .execute(format!("DROP DATABASE IF EXISTS \"{building}\"").as_str())
            .await?;
        admin
            .execute(format!("CREATE DATABASE \"{building}\" TEMPLATE template0").as_str())
            .await?;
        {
            let mut conn = PgConnection::connect(&self.url_for(&building)).await?;
            conn.execute("SET TIME ZONE 'UTC'").await?;
            MIGRATOR
                .run(&mut conn)
                .await
                .context("applying migrations/ to the template database")?;
            conn.close().await?;
        }
        // Rename into place; another process may have won the race meanwhile.
        let renamed = admin
            .execute(
                format!(
                    "ALTER DATABASE \"{building}\" RENAME TO \"{}\"",
                    self.template
                )
                .as_str(),
            )
            .await;
        if renamed.is_err() {
            admin
                .execute(format!("DROP DATABASE IF EXISTS \"{building}\"").as_str())
                .await?;
        }
        Ok(())
    }

    /// A fresh database cloned from the migrated template.
    pub async fn create_database(&self) -> anyhow::Result<TestDatabase> {
        let name = format!(
            "jh_{}_{}_{}",
            std::process::id(),
            CLONES.fetch_add(1, Ordering::SeqCst),
            uuid::Uuid::new_v4()
                .simple()
                .to_string()
                .get(..8)
                .unwrap_or("x")
        );
        let mut admin = self.admin().await?;
        let mut attempt = 0;
        loop {
            let res = admin
                .execute(
                    format!("CREATE DATABASE \"{name}\" TEMPLATE \"{}\"", self.template).as_str(),
                )
                .await;
            match res {
                Ok(_) => break,
                // "source database is being accessed by other users": a clone
                // racing the template build; retry briefly.
                Err(e) if attempt < 50 => {
                    attempt += 1;
                    tracing::debug!("clone retry: {e}");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => return Err(e).context("cloning the template database"),
            }
        }
        Ok(TestDatabase {
            name: name.clone(),
            url: self.url_for(&name),
            admin_url: self.admin_url.to_string(),
        })
    }
}

fn redact(u: &url::Url) -> String {
    let mut u = u.clone();
    let _ = u.set_password(None);
    u.to_string()
}

fn template_name() -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for m in MIGRATOR.iter() {
        h.update(m.version.to_le_bytes());
        h.update(&*m.checksum);
    }
    format!("janitor_tpl_{}", &hex::encode(h.finalize())[..12])
}

/// A scenario's own database, dropped when the value is dropped.
#[derive(Debug)]
pub struct TestDatabase {
    pub name: String,
    pub url: String,
    admin_url: String,
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        // Drop in the background of a short-lived runtime: Drop cannot await.
        let admin_url = self.admin_url.clone();
        let name = self.name.clone();
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            if let Ok(rt) = rt {
                rt.block_on(async move {
                    if let Ok(mut c) = PgConnection::connect(&admin_url).await {
                        let _ = c
                            .execute(
                                format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)").as_str(),
                            )
                            .await;
                    }
                });
            }
        })
        .join();
    }
}

fn find_bindir() -> anyhow::Result<PathBuf> {
    if let Ok(dir) = std::env::var("JANITOR_PG_BINDIR") {
        return Ok(PathBuf::from(dir));
    }
    // debversion is packaged for 15; prefer it, then any installed version.
    let mut candidates = vec![PathBuf::from("/usr/lib/postgresql/15/bin")];
    if let Ok(rd) = std::fs::read_dir("/usr/lib/postgresql") {
        let mut others: Vec<PathBuf> = rd
            .filter_map(|e| e.ok())
            .map(|e| e.path().join("bin"))
            .collect();
        others.sort();
        others.reverse();
        candidates.extend(others);
    }
    candidates
        .into_iter()
        .find(|d| d.join("initdb").exists() && d.join("postgres").exists())
        .ok_or_else(|| {
            anyhow::anyhow!(
                "no PostgreSQL server binaries found (looked in /usr/lib/postgresql/*/bin); \
                 run ci/setup.sh, or set {DATABASE_URL_ENV} to an existing server"
            )
        })
}

async fn spawn_postgres() -> anyhow::Result<(url::Url, OwnedProcess, Spawned)> {
    let bindir = find_bindir()?;
    let dir = server_dir("janitor-harness-pg-")?;
    let data = dir.join("data");
    let sockets = dir.join("sock");
    std::fs::create_dir_all(&sockets)?;
    // initdb refuses to run as root: run the server as `postgres` then.
    let owner = if is_root() {
        Some(lookup_user("postgres").ok_or_else(|| {
            anyhow::anyhow!("running as root and there is no `postgres` user to run the server as")
        })?)
    } else {
        None
    };
    if let Some((uid, gid)) = owner {
        chown_r(&dir, uid, gid)?;
    }
    let mut initdb = Command::new(bindir.join("initdb"));
    initdb
        .args(["-D"])
        .arg(&data)
        .args([
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--no-sync",
            "--locale=C",
        ])
        .env("TZ", "UTC")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    as_user(&mut initdb, owner);
    let out = initdb.output().context("running initdb")?;
    if !out.status.success() {
        bail!("initdb failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    for attempt in 0..5 {
        let port = free_port()?;
        let pg = postgres_command(&bindir, &data, &sockets, port, owner);
        // SIGQUIT: immediate shutdown; the data directory is thrown away anyway.
        let mut proc = OwnedProcess::spawn(pg, Some(dir.clone()), libc::SIGQUIT)?;
        let url = url::Url::parse(&format!("postgres://postgres@127.0.0.1:{port}/postgres"))?;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if PgConnection::connect(url.as_str()).await.is_ok() {
                let spawned = Spawned {
                    bindir,
                    data,
                    sockets,
                    port,
                    owner,
                };
                return Ok((url, proc, spawned));
            }
            if proc.exited().is_some() {
                break; // port clash or bad config: try another port
            }
            if Instant::now() > deadline {
                bail!("spawned postgres did not accept connections within 30 s");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tracing::warn!(
            attempt,
            "postgres exited at start; retrying on another port"
        );
        proc.disarm(); // keeps the directory for the next attempt
    }
    bail!("could not start postgres (5 attempts)")
}

/// How a spawned server is started (kept for [`PostgresServer::restart`]).
#[derive(Debug, Clone)]
struct Spawned {
    bindir: PathBuf,
    data: PathBuf,
    sockets: PathBuf,
    port: u16,
    owner: Option<(u32, u32)>,
}

fn postgres_command(
    bindir: &std::path::Path,
    data: &std::path::Path,
    sockets: &std::path::Path,
    port: u16,
    owner: Option<(u32, u32)>,
) -> Command {
    let mut pg = Command::new(bindir.join("postgres"));
    pg.arg("-D")
        .arg(data)
        .args(["-p", &port.to_string(), "-k"])
        .arg(sockets)
        .args([
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            "fsync=off",
            "-c",
            "synchronous_commit=off",
            "-c",
            "full_page_writes=off",
            "-c",
            "timezone=UTC",
            "-c",
            "max_connections=300",
            "-c",
            "shared_buffers=128MB",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    as_user(&mut pg, owner);
    pg
}

fn as_user(cmd: &mut Command, owner: Option<(u32, u32)>) {
    use std::os::unix::process::CommandExt;
    if let Some((uid, gid)) = owner {
        cmd.uid(uid).gid(gid);
    }
}

fn chown_r(path: &Path, uid: u32, gid: u32) -> std::io::Result<()> {
    std::os::unix::fs::chown(path, Some(uid), Some(gid))?;
    if path.is_dir() {
        for e in std::fs::read_dir(path)? {
            chown_r(&e?.path(), uid, gid)?;
        }
    }
    Ok(())
}
