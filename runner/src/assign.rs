//! The assignment procedure (runner-internals.md §3, §4): pick the next queue
//! item, claim it in Redis, abort items that cannot run, and build the
//! Assignment the worker receives (data-types.md §9).

use crate::app::App;
use crate::config::{Campaign, DebianBuild, Distribution};
use crate::db;
use crate::finish::FinishError;
use crate::state::{self, StateError};
use crate::types::result::JanitorResult;
use crate::types::{ActiveRun, Backchannel};
use crate::vcs::{self, BranchOpener, VcsManager};
use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::BTreeSet;
use std::sync::{Arc, LazyLock, OnceLock};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Assign,
    /// Build the assignment, then release the claim again (§4.11).
    Peek,
}

/// What the caller asks for; every field optional.
#[derive(Debug, Clone)]
pub struct Request {
    pub worker: Option<String>,
    pub worker_link: Option<String>,
    pub backchannel: Backchannel,
    pub codebase: Option<String>,
    pub campaign: Option<String>,
}

impl Default for Request {
    fn default() -> Self {
        Request {
            worker: None,
            worker_link: None,
            backchannel: Backchannel::None,
            codebase: None,
            campaign: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AssignError {
    #[error("queue empty")]
    QueueEmpty,
    /// The forge rate-limited the resume lookup (§4.3); the item was
    /// aborted and the host is excluded until the limit ends.
    #[error("rate limited")]
    RateLimited,
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<sqlx::Error> for AssignError {
    fn from(e: sqlx::Error) -> Self {
        AssignError::Internal(e.into())
    }
}

impl From<StateError> for AssignError {
    fn from(e: StateError) -> Self {
        AssignError::Internal(e.into())
    }
}

/// Parse the `backchannel` request field: null, `{}` or an unknown kind →
/// none; `http` → polling; `jenkins` → Jenkins. A non-empty object without
/// `kind`, or a known kind without a usable `url`, is the caller's error.
pub fn parse_backchannel(v: Option<&Value>) -> Result<Backchannel, String> {
    let obj = match v {
        None | Some(Value::Null) => return Ok(Backchannel::None),
        Some(Value::Object(m)) if m.is_empty() => return Ok(Backchannel::None),
        Some(Value::Object(m)) => m,
        Some(_) => return Err("backchannel must be an object".into()),
    };
    let kind = obj
        .get("kind")
        .ok_or_else(|| "backchannel without kind".to_string())?;
    let make: fn(String) -> Backchannel = match kind.as_str() {
        Some("http") => |my_url| Backchannel::Polling { my_url },
        Some("jenkins") => |my_url| Backchannel::Jenkins { my_url },
        _ => return Ok(Backchannel::None),
    };
    let url = obj
        .get("url")
        .and_then(Value::as_str)
        .ok_or_else(|| "backchannel without url".to_string())?;
    Ok(make(normalise_url(url)?))
}

/// yarl's rendering of a URL: scheme and host lower-cased, the rest kept.
fn normalise_url(url: &str) -> Result<String, String> {
    let parsed = url::Url::parse(url).map_err(|e| format!("invalid backchannel url: {e}"))?;
    crate::backchannel::check_scheme(&parsed)?;
    let Some(idx) = url.find("://") else {
        return Ok(url.to_string());
    };
    let rest = &url[idx + 3..];
    let auth_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..auth_end];
    let (userinfo, hostport) = match authority.rfind('@') {
        Some(at) => (&authority[..=at], &authority[at + 1..]),
        None => ("", authority),
    };
    Ok(format!(
        "{}://{userinfo}{}{}",
        parsed.scheme(),
        hostport.to_lowercase(),
        &rest[auth_end..]
    ))
}

/// The Assignment (data-types.md §9), fields in upstream order.
#[derive(Debug, Serialize)]
pub struct Assignment {
    pub id: String,
    pub description: String,
    pub queue_id: i64,
    pub branch: BranchSection,
    pub resume: Option<Value>,
    pub build: BuildSection,
    pub command: String,
    pub codebase: String,
    pub codemod: Codemod,
    pub env: Map<String, Value>,
    pub campaign: String,
    #[serde(rename = "force-build")]
    pub force_build: bool,
    #[serde(rename = "skip-setup-validation")]
    pub skip_setup_validation: bool,
    pub target_repository: TargetRepository,
}

#[derive(Debug, Serialize)]
pub struct BranchSection {
    #[serde(rename = "default-empty")]
    pub default_empty: bool,
    pub url: Option<String>,
    /// `""` when the codebase has none: the worker needs a string (divergence-policy §2).
    pub subpath: String,
    pub vcs_type: Option<String>,
    pub cached_url: Option<String>,
    /// Branch names (sorted), or null when the branch was not opened
    /// (divergence-policy §2: upstream sends a name → role map).
    pub additional_colocated_branches: Option<Vec<String>>,
}

#[derive(Debug, Serialize)]
pub struct BuildSection {
    pub target: &'static str,
    pub environment: Map<String, Value>,
    pub config: Map<String, Value>,
}

#[derive(Debug, Serialize)]
pub struct Codemod {
    pub command: String,
    pub environment: Map<String, Value>,
}

#[derive(Debug, Serialize)]
pub struct TargetRepository {
    pub url: Option<String>,
    pub vcs_type: Option<String>,
}

/// Which builder a campaign uses (§4.2).
enum Builder<'a> {
    Debian {
        distribution: &'a Distribution,
        build: &'a DebianBuild,
    },
    Generic {
        chroot: Option<&'a str>,
    },
}

impl Builder<'_> {
    fn kind(&self) -> &'static str {
        match self {
            Builder::Debian { .. } => "debian",
            Builder::Generic { .. } => "generic",
        }
    }
}

fn builder_for<'a>(app: &'a App, campaign: &'a Campaign) -> anyhow::Result<Builder<'a>> {
    if let Some(build) = campaign.debian_build() {
        let name = build.base_distribution.as_deref().unwrap_or_default();
        let distribution = app
            .config
            .distribution(name)
            .ok_or_else(|| anyhow::anyhow!("Unsupported distribution: {name}"))?;
        return Ok(Builder::Debian {
            distribution,
            build,
        });
    }
    if let Some(g) = campaign.generic_build() {
        return Ok(Builder::Generic {
            chroot: g.chroot.as_deref(),
        });
    }
    anyhow::bail!("no supported build type")
}

fn non_empty(s: &Option<String>) -> Option<&str> {
    s.as_deref().filter(|s| !s.is_empty())
}

/// `dpkg-vendor --query vendor`, computed once per process.
fn dpkg_vendor() -> anyhow::Result<String> {
    static VENDOR: OnceLock<Result<String, String>> = OnceLock::new();
    VENDOR
        .get_or_init(|| {
            let out = std::process::Command::new("dpkg-vendor")
                .args(["--query", "vendor"])
                .output()
                .map_err(|e| format!("dpkg-vendor: {e}"))?;
            if !out.status.success() {
                return Err(format!("dpkg-vendor failed: {}", out.status));
            }
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
        })
        .clone()
        .map_err(anyhow::Error::msg)
}

fn str_value(s: impl Into<String>) -> Value {
    Value::String(s.into())
}

/// The APT source line of a distribution's mirror, when it has one.
fn apt_repository(d: &Distribution) -> Option<String> {
    let mirror = non_empty(&d.archive_mirror_uri)?;
    if d.component.is_empty() {
        return None;
    }
    Some(format!(
        "{mirror} {} {}",
        d.name.as_deref().unwrap_or("None"),
        d.component.join(" ")
    ))
}

/// Build environment (§4.6).
fn build_env(builder: &Builder<'_>) -> anyhow::Result<Map<String, Value>> {
    let mut env = Map::new();
    let Builder::Debian {
        distribution: d,
        build: b,
    } = builder
    else {
        return Ok(env);
    };
    if let Some(name) = non_empty(&d.name) {
        env.insert("DISTRIBUTION".into(), str_value(name));
    }
    let vendor = match non_empty(&d.vendor) {
        Some(v) => v.to_string(),
        None => dpkg_vendor()?,
    };
    env.insert("DEB_VENDOR".into(), str_value(vendor));
    if let Some(chroot) = non_empty(&b.chroot).or(non_empty(&d.chroot)) {
        env.insert("CHROOT".into(), str_value(chroot));
    }
    if let Some(repo) = apt_repository(d) {
        env.insert("APT_REPOSITORY".into(), str_value(repo));
    }
    Ok(env)
}

/// Build config (§4.6).
async fn build_config(
    app: &App,
    conn: &mut sqlx::PgConnection,
    builder: &Builder<'_>,
    campaign: &Campaign,
    item: &db::queue::NextItem,
) -> anyhow::Result<Map<String, Value>> {
    let mut config = Map::new();
    let dep_server_url = app.settings.dep_server_url.clone().map(Value::String);
    match builder {
        Builder::Generic { chroot } => {
            if let Some(c) = chroot.filter(|c| !c.is_empty()) {
                config.insert("chroot".into(), str_value(c));
            }
        }
        Builder::Debian {
            distribution: d,
            build: b,
        } => {
            let mut lintian = Map::new();
            lintian.insert(
                "profile".into(),
                non_empty(&d.lintian_profile).map_or(Value::Null, str_value),
            );
            if !d.lintian_suppress_tag.is_empty() {
                lintian.insert(
                    "suppress-tags".into(),
                    Value::Array(d.lintian_suppress_tag.iter().map(str_value).collect()),
                );
            }
            config.insert("lintian".into(), Value::Object(lintian));
            let mut suites: Vec<String> = b.extra_build_distribution.clone();
            if let Some(cs) = item.change_set.as_deref().filter(|c| !c.is_empty()) {
                suites.push(format!("cs/{cs}"));
            }
            let extra: Vec<Value> = match non_empty(&app.settings.apt_archive_url) {
                Some(apt) => suites
                    .iter()
                    .map(|s| str_value(format!("deb [trusted=yes] {apt} {s} main")))
                    .collect(),
                None => Vec::new(),
            };
            config.insert("build-extra-repositories".into(), Value::Array(extra));
            let build_distribution = non_empty(&b.build_distribution)
                .or(non_empty(&campaign.name))
                .unwrap_or_default()
                .to_string();
            config.insert("build-distribution".into(), str_value(&build_distribution));
            config.insert(
                "build-suffix".into(),
                str_value(non_empty(&b.build_suffix).unwrap_or_default()),
            );
            if let Some(cmd) = non_empty(&b.build_command).or(non_empty(&d.build_command)) {
                config.insert("build-command".into(), str_value(cmd));
            }
            if let Some(v) =
                db::runs::last_build_version(conn, &item.codebase, &build_distribution).await?
            {
                config.insert("last-build-version".into(), str_value(v));
            }
            if let Some(chroot) = non_empty(&b.chroot).or(non_empty(&d.chroot)) {
                config.insert("chroot".into(), str_value(chroot));
            }
            if let Some(repo) = apt_repository(d) {
                config.insert("base-apt-repository".into(), str_value(repo));
                config.insert(
                    "base-apt-repository-signed-by".into(),
                    non_empty(&d.signed_by).map_or(Value::Null, str_value),
                );
            }
        }
    }
    config.insert(
        "dep_server_url".into(),
        dep_server_url.unwrap_or(Value::Null),
    );
    Ok(config)
}

/// `committer_env` (§15.2).
pub fn committer_env(committer: &str) -> Map<String, Value> {
    static RE: LazyLock<regex::Regex> = LazyLock::new(|| {
        regex::Regex::new(r"^(.*?)\s*<?([\[\]\w+.-]+@[\w+.-]+)>?").expect("valid regex")
    });
    let (name, email) = match RE.captures(committer) {
        Some(c) => (
            c.get(1).map_or("", |m| m.as_str()),
            c.get(2).map_or("", |m| m.as_str()),
        ),
        None => (committer, ""),
    };
    let mut env = Map::new();
    if !name.is_empty() {
        for k in ["DEBFULLNAME", "GIT_COMMITTER_NAME", "GIT_AUTHOR_NAME"] {
            env.insert(k.into(), str_value(name));
        }
    }
    if !email.is_empty() {
        for k in [
            "DEBEMAIL",
            "GIT_COMMITTER_EMAIL",
            "GIT_AUTHOR_EMAIL",
            "EMAIL",
        ] {
            env.insert(k.into(), str_value(email));
        }
    }
    env.insert("COMMITTER".into(), str_value(committer));
    env.insert("BRZ_EMAIL".into(), str_value(committer));
    env
}

/// Python `shlex.split` (POSIX mode, no comments).
pub fn shlex_split(s: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_token = false;
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if in_token {
                    out.push(std::mem::take(&mut cur));
                    in_token = false;
                }
            }
            '\'' => {
                in_token = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => cur.push(c),
                        None => return Err("No closing quotation".into()),
                    }
                }
            }
            '"' => {
                in_token = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(n @ ('\\' | '"' | '$' | '`' | '\n')) => cur.push(n),
                            Some(n) => {
                                cur.push('\\');
                                cur.push(n);
                            }
                            None => return Err("No closing quotation".into()),
                        },
                        Some(c) => cur.push(c),
                        None => return Err("No closing quotation".into()),
                    }
                }
            }
            '\\' => {
                in_token = true;
                match chars.next() {
                    Some(n) => cur.push(n),
                    None => return Err("No escaped character".into()),
                }
            }
            c => {
                in_token = true;
                cur.push(c);
            }
        }
    }
    if in_token {
        out.push(cur);
    }
    Ok(out)
}

/// Python `shlex.quote`.
pub fn shlex_quote(s: &str) -> String {
    if s.is_empty() {
        return "''".into();
    }
    if s.chars()
        .all(|c| c.is_ascii_alphanumeric() || "_@%+=:,./-".contains(c))
    {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', "'\"'\"'"))
}

/// `splitout_env` (§15.3): leading `KEY=VALUE` words become environment.
pub fn splitout_env(command: &str) -> Result<(Vec<(String, String)>, String), String> {
    let mut words = shlex_split(command)?;
    let mut env = Vec::new();
    while let Some(first) = words.first() {
        let Some((k, v)) = first.split_once('=') else {
            break;
        };
        env.push((k.to_string(), v.to_string()));
        words.remove(0);
    }
    let command = words
        .iter()
        .map(|w| shlex_quote(w))
        .collect::<Vec<_>>()
        .join(" ");
    Ok((env, command))
}

/// Cache branch name (§4.8): `<vendor>/latest` for Debian campaigns.
fn cache_branch_name(builder: &Builder<'_>) -> anyhow::Result<String> {
    Ok(match builder {
        Builder::Debian { distribution, .. } => {
            let vendor = match non_empty(&distribution.vendor) {
                Some(v) => v.to_string(),
                None => dpkg_vendor()?.to_lowercase(),
            };
            format!("{vendor}/latest")
        }
        Builder::Generic { .. } => "main".into(),
    })
}

fn managers(app: &App) -> anyhow::Result<Vec<(String, VcsManager)>> {
    match app.settings.public_vcs_location.as_deref() {
        None | Some("") => Ok(Vec::new()),
        Some(loc) => Ok(vcs::parse_managers(loc)?),
    }
}

fn manager_for<'a>(managers: &'a [(String, VcsManager)], vcs_type: &str) -> Option<&'a VcsManager> {
    managers.iter().find(|(k, _)| k == vcs_type).map(|(_, m)| m)
}

/// Inline abort (§7.2): stored like any finished run (run row, queue item
/// deleted, claim released, background reschedule); a run that already
/// exists is left alone, as upstream swallows "run exists".
async fn abort(
    app: &Arc<App>,
    run: &ActiveRun,
    code: &str,
    description: &str,
) -> anyhow::Result<()> {
    let now = app.clock.now_naive();
    let mut result = JanitorResult::aborted(run, code, Some(description.to_string()), None, now);
    match crate::finish::finish_run(app, run, &mut result).await {
        Ok(()) | Err(FinishError::RunExists(_) | FinishError::Busy(_)) => Ok(()),
        Err(e) => Err(anyhow::anyhow!(e)),
    }
}

/// VcsInfo (data-types.md §2) of a selected row, keys in upstream order.
fn vcs_info(item: &db::queue::NextItem) -> Map<String, Value> {
    let mut m = Map::new();
    if let Some(u) = non_empty(&item.branch_url) {
        m.insert("branch_url".into(), str_value(u));
    }
    if let Some(s) = &item.subpath {
        m.insert("subpath".into(), str_value(s.clone()));
    }
    if let Some(t) = non_empty(&item.vcs_type) {
        m.insert("vcs_type".into(), str_value(t));
    }
    m
}

/// Hosts excluded from selection: `--avoid-host` plus current rate limits.
fn excluded_hosts(app: &App, limits: Vec<(String, chrono::NaiveDateTime)>) -> Vec<String> {
    let mut hosts: BTreeSet<String> = app.settings.avoid_hosts.iter().cloned().collect();
    hosts.extend(limits.into_iter().map(|(host, _)| host));
    hosts.into_iter().collect()
}

/// Queue items read per selection query (see [`next_item`]).
const SELECTION_BATCH: i64 = 8;

/// The whole procedure (§4): returns the assignment; in peek mode the claim
/// is released before returning. An assign that fails after its claim
/// releases the claim before it answers, so the item is not blocked until
/// the watchdog gives up on a run nobody has.
pub async fn next_item(
    app: &Arc<App>,
    opener: &dyn BranchOpener,
    mode: Mode,
    req: &Request,
) -> Result<Assignment, AssignError> {
    let mut conn = app.db.acquire().await?;
    let (item, campaign, run) = claim_next(app, req, &mut conn).await?;
    let claimed = run.clone();
    match build_assignment(app, opener, mode, conn, item, campaign, run).await {
        Err(AssignError::Internal(e)) => {
            release_failed_claim(app, &claimed).await;
            Err(AssignError::Internal(e))
        }
        other => other,
    }
}

/// The request is failing already: release the claim now if Redis answers,
/// else in the background until it does (see [`forget_claim_later`]).
async fn release_failed_claim(app: &Arc<App>, run: &ActiveRun) {
    match state::unclaim_run(app, run).await {
        Ok(true) => {
            tracing::warn!(run_id = %run.log_id, queue_id = run.queue_id, "assignment failed after its claim; claim released");
            if let Err(e) = state::publish_status(app).await {
                tracing::warn!(error = %e, "publishing the status after a released claim failed");
            }
        }
        Ok(false) => {}
        Err(e) => {
            tracing::warn!(run_id = %run.log_id, error = %e, "releasing the claim of a failed assignment failed; retrying in the background");
            forget_claim_later(app, run, true);
        }
    }
}

/// Longest a claim nobody holds is retried for in the background.
const FORGET_CLAIM_FOR: std::time::Duration = std::time::Duration::from_secs(120);

/// Remove, once Redis answers, a claim no worker was told about: a claim
/// (or release) that failed on a timeout or a dropped connection may still
/// have run, or may run later (a hung Redis executes what it had buffered
/// when it resumes). Retried with back-off, then once more two seconds
/// after the first success to catch such a late command. Without this the
/// item stays blocked until the watchdog gives up on a run nobody has.
fn forget_claim_later(app: &Arc<App>, run: &ActiveRun, announced: bool) {
    let (app2, run) = (app.clone(), run.clone());
    app.background.spawn(async move {
        let started = tokio::time::Instant::now();
        let mut pause = std::time::Duration::from_millis(100);
        let mut succeeded = false;
        while started.elapsed() < FORGET_CLAIM_FOR {
            tokio::time::sleep(pause).await;
            let forgotten = if announced {
                state::unclaim_run(&app2, &run).await
            } else {
                state::forget_unannounced(&app2, &run).await
            };
            match forgotten {
                Ok(found) => {
                    if found {
                        tracing::warn!(run_id = %run.log_id, queue_id = run.queue_id, "claim of a failed assignment released");
                    }
                    if succeeded {
                        return;
                    }
                    succeeded = true;
                    pause = std::time::Duration::from_secs(2);
                }
                Err(_) => pause = (pause * 2).min(std::time::Duration::from_secs(2)),
            }
        }
        tracing::error!(run_id = %run.log_id, queue_id = run.queue_id, "could not release the claim of a failed assignment; the watchdog will");
    });
}

/// Select queue items in order and claim the first one that can be
/// assigned (§4.1–§4.2): items of unknown campaigns or without a VCS URL
/// are aborted on the way.
async fn claim_next<'a>(
    app: &'a Arc<App>,
    req: &Request,
    conn: &mut sqlx::pool::PoolConnection<sqlx::Postgres>,
) -> Result<(db::queue::NextItem, &'a crate::config::Campaign, ActiveRun), AssignError> {
    let (claimed, limits) = state::selection_inputs(app).await?;
    let exclude_hosts = excluded_hosts(app, limits);
    let mut assigned: Vec<i32> = claimed
        .into_iter()
        .filter_map(|k| i32::try_from(k).ok())
        .collect();
    // Candidates in queue order, fetched a few at a time: concurrent assigns
    // read the same head of the queue, and one that loses a claim tries the
    // next candidate instead of querying again. The claim stays the arbiter.
    let mut candidates = std::collections::VecDeque::new();
    loop {
        if candidates.is_empty() {
            let filter = db::queue::NextItemFilter {
                codebase: req.codebase.as_deref(),
                campaign: req.campaign.as_deref(),
                exclude_hosts: &exclude_hosts,
                assigned: &assigned,
            };
            candidates.extend(db::queue::next_items(conn, &filter, SELECTION_BATCH).await?);
        }
        let Some(item) = candidates.pop_front() else {
            app.metrics.queue_empty.inc();
            return Err(AssignError::QueueEmpty);
        };
        let run = ActiveRun {
            queue_id: i64::from(item.id),
            log_id: uuid::Uuid::new_v4().to_string(),
            codebase: Some(item.codebase.clone()),
            change_set: item.change_set.clone(),
            campaign: item.campaign.clone(),
            command: item.command.clone().unwrap_or_default(),
            estimated_duration: item
                .estimated_duration
                .as_ref()
                .map(|d| db::interval::total_seconds(db::interval::to_timedelta(d))),
            start_time: app.clock.now_naive(),
            worker_name: req.worker.clone(),
            worker_link: req.worker_link.clone(),
            vcs_info: vcs_info(&item),
            backchannel: req.backchannel.clone(),
            instigated_context: item.context.clone().map_or(Value::Null, Value::String),
            resume_from: None,
        };
        match state::claim(app, &run).await {
            Ok(()) => {}
            Err(StateError::AlreadyClaimed(_)) => {
                // Someone else won this item since we read the claims.
                assigned.push(item.id);
                continue;
            }
            Err(e) => {
                // The claim may have been recorded all the same.
                forget_claim_later(app, &run, false);
                return Err(e.into());
            }
        }
        match check_claimed(app, conn, &item, &run).await {
            Ok(Claimed::Usable(campaign)) => return Ok((item, campaign, run)),
            Ok(Claimed::Skipped) => assigned.push(item.id),
            Err(e) => {
                release_failed_claim(app, &run).await;
                return Err(e);
            }
        }
    }
}

/// What became of a claimed item.
enum Claimed<'a> {
    Usable(&'a crate::config::Campaign),
    /// Withdrawn (stale claim) or aborted (unknown campaign, no VCS URL).
    Skipped,
}

/// The checks between the claim and the assignment; an error here leaves
/// the claim for the caller to release.
async fn check_claimed<'a>(
    app: &'a Arc<App>,
    conn: &mut sqlx::PgConnection,
    item: &db::queue::NextItem,
    run: &ActiveRun,
) -> Result<Claimed<'a>, AssignError> {
    // The item may have been finished (deleted, then released) between
    // our SELECT and our claim: then the claim is stale. One indexed
    // lookup closes the double hand-out upstream suffers from.
    if !db::queue::exists(conn, item).await? {
        state::withdraw(app, run).await?;
        return Ok(Claimed::Skipped);
    }
    state::announce(app, run).await?;
    let Some(campaign) = app.config.campaign(&item.campaign) else {
        tracing::warn!(campaign = %item.campaign, "unknown campaign");
        let description = format!("Campaign {} unknown", item.campaign);
        abort(app, run, "unknown-campaign", &description).await?;
        return Ok(Claimed::Skipped);
    };
    if !campaign.default_empty && !run.vcs_info.contains_key("branch_url") {
        abort(app, run, "not-in-vcs", "No VCS URL known for codebase.").await?;
        return Ok(Claimed::Skipped);
    }
    Ok(Claimed::Usable(campaign))
}

/// Open the branch, find a resume, build the config (§4.3–§4.6) for the
/// claimed item.
async fn build_assignment(
    app: &Arc<App>,
    opener: &dyn BranchOpener,
    mode: Mode,
    mut conn: sqlx::pool::PoolConnection<sqlx::Postgres>,
    item: db::queue::NextItem,
    campaign: &crate::config::Campaign,
    mut run: ActiveRun,
) -> Result<Assignment, AssignError> {
    let builder = builder_for(app, campaign)?;
    let db_vcs_type = run
        .vcs_info
        .get("vcs_type")
        .and_then(Value::as_str)
        .map(str::to_string);

    let refresh = item.refresh.unwrap_or(false);
    let mut colocated: Option<Vec<String>> = None;
    let mut resume_branch: Option<vcs::ResumeBranch> = None;
    let vcs_type: Option<String>;
    match run
        .vcs_info
        .get("branch_url")
        .and_then(Value::as_str)
        .map(str::to_string)
    {
        Some(url) => match opener.open(&url, db_vcs_type.as_deref()).await {
            Ok(branch) => {
                run.vcs_info
                    .insert("branch_url".into(), str_value(branch.full_url()));
                colocated = Some(match builder {
                    Builder::Debian { .. } => vcs::debian_colocated_branches(&branch),
                    Builder::Generic { .. } => Vec::new(),
                });
                vcs_type = Some(branch.vcs_type.clone());
                if !refresh {
                    let names = crate::forge::candidate_names(
                        campaign.branch_name.as_deref(),
                        &item.codebase,
                    );
                    match opener.forge_resume(&branch, &names).await? {
                        vcs::ForgeResume::None => {}
                        vcs::ForgeResume::Found(b) => resume_branch = Some(b),
                        vcs::ForgeResume::RateLimited { host, reason } => {
                            state::rate_limit(app, &host, None).await?;
                            abort(app, &run, "resume-rate-limited", &reason).await?;
                            return Err(AssignError::RateLimited);
                        }
                    }
                }
            }
            Err(vcs::OpenError::UnsupportedVcs(t)) => {
                return Err(anyhow::anyhow!("unsupported vcs type {t}").into());
            }
            Err(e) => {
                tracing::debug!(%url, error = %e, "error opening branch");
                vcs_type = db_vcs_type.clone();
            }
        },
        None => vcs_type = Some(db_vcs_type.clone().unwrap_or_else(|| "git".into())),
    }
    let vcs_type = vcs_type.map(|t| t.to_lowercase());
    let managers = managers(app)?;

    // §4.4: without a forge resume branch, the store's `<campaign>/main`.
    if resume_branch.is_none() && !refresh {
        if let Some(t) = vcs_type.as_deref() {
            match manager_for(&managers, t) {
                None => tracing::warn!(vcs_type = t, "no public VCS manager"),
                Some(manager) => {
                    let branch = format!("{}/main", campaign.name.as_deref().unwrap_or_default());
                    resume_branch = tokio::time::timeout(
                        vcs::STORE_TIMEOUT,
                        manager.branch_tip(&item.codebase, &branch, opener),
                    )
                    .await
                    .ok()
                    .flatten();
                }
            }
        }
    }

    // §4.5: a resume needs a successful, unrejected run at the branch's tip.
    let mut resume: Option<Value> = None;
    if let Some(b) = &resume_branch {
        if let Some(r) = db::runs::resume_run(&mut conn, &item.campaign, &b.revision).await? {
            if r.publish_status != "rejected" {
                // Upstream refuses to hand out credentials-bearing URLs (QI-5: a 500).
                if b.url.starts_with("git+ssh:") || b.url.starts_with("bzr+ssh:") {
                    return Err(anyhow::anyhow!("resume branch {} is authenticated", b.url).into());
                }
                run.resume_from = Some(r.id.clone());
                resume = Some(resume_json(&r, &b.url));
            }
        }
    }

    let environment = build_env(&builder)?;
    let config = build_config(app, &mut conn, &builder, campaign, &item).await?;
    drop(conn);

    state::update(app, &run).await?;

    let (cached_url, target_url) = match vcs_type.as_deref().and_then(|t| manager_for(&managers, t))
    {
        None => (None, None),
        Some(m) => (
            Some(m.branch_url(&item.codebase, &cache_branch_name(&builder)?)),
            Some(
                m.repository_url(&item.codebase)
                    .map_err(anyhow::Error::from)?,
            ),
        ),
    };

    let mut env = environment.clone();
    if let Some(committer) = non_empty(&app.config.committer) {
        env.extend(committer_env(committer));
    }
    let (extra_env, command) =
        splitout_env(&run.command).map_err(|e| anyhow::anyhow!("invalid command: {e}"))?;
    for (k, v) in extra_env {
        env.insert(k, str_value(v));
    }

    let assignment = Assignment {
        id: run.log_id.clone(),
        description: format!("{} on {}", item.campaign, item.codebase),
        queue_id: run.queue_id,
        branch: BranchSection {
            default_empty: campaign.default_empty,
            url: run
                .vcs_info
                .get("branch_url")
                .and_then(Value::as_str)
                .map(str::to_string),
            subpath: run
                .vcs_info
                .get("subpath")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            vcs_type: db_vcs_type.clone(),
            cached_url,
            additional_colocated_branches: colocated,
        },
        resume,
        build: BuildSection {
            target: builder.kind(),
            environment,
            config,
        },
        command: command.clone(),
        codebase: item.codebase.clone(),
        codemod: Codemod {
            command,
            environment: Map::new(),
        },
        env,
        campaign: item.campaign.clone(),
        force_build: campaign.force_build,
        skip_setup_validation: campaign.skip_setup_validation,
        target_repository: TargetRepository {
            url: target_url,
            vcs_type: db_vcs_type,
        },
    };
    if mode == Mode::Peek {
        state::unclaim_run(app, &run).await?;
    }
    Ok(assignment)
}

/// ResumeInfo JSON (data-types.md §8).
fn resume_json(r: &db::runs::ResumeRun, branch_url: &str) -> Value {
    let branches: Vec<Value> = r
        .branches
        .iter()
        .map(|(role, remote, base, rev)| {
            let text = |s: &Option<String>| {
                s.as_deref()
                    .filter(|s| !s.is_empty())
                    .map_or(Value::Null, str_value)
            };
            Value::Array(vec![
                str_value(role.clone()),
                remote.clone().map_or(Value::Null, Value::String),
                text(base),
                text(rev),
            ])
        })
        .collect();
    let mut m = Map::new();
    m.insert("run_id".into(), str_value(r.id.clone()));
    m.insert("result".into(), r.result.clone().unwrap_or(Value::Null));
    m.insert("branch_url".into(), str_value(branch_url));
    m.insert("branches".into(), Value::Array(branches));
    Value::Object(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn committer_env_splits_name_and_email() {
        let env = committer_env("Joe Example <joe@example.com>");
        assert_eq!(env.len(), 9);
        assert_eq!(env["DEBFULLNAME"], json!("Joe Example"));
        assert_eq!(env["EMAIL"], json!("joe@example.com"));
        assert_eq!(env["BRZ_EMAIL"], json!("Joe Example <joe@example.com>"));
        let env = committer_env("nobody");
        assert_eq!(env["GIT_AUTHOR_NAME"], json!("nobody"));
        assert!(!env.contains_key("EMAIL"));
    }

    #[test]
    fn splitout_env_takes_leading_assignments_and_requotes() {
        let (env, cmd) = splitout_env(r#"A=1 B="x y" cmd 'a b' c=d"#).unwrap();
        assert_eq!(env, [("A".into(), "1".into()), ("B".into(), "x y".into())]);
        assert_eq!(cmd, "cmd 'a b' c=d");
        let (_, cmd) = splitout_env("echo \"it's\" ''").unwrap();
        assert_eq!(cmd, "echo 'it'\"'\"'s' ''");
        assert!(splitout_env("echo 'open").is_err());
    }

    #[test]
    fn backchannel_requests() {
        assert_eq!(parse_backchannel(None).unwrap(), Backchannel::None);
        assert_eq!(
            parse_backchannel(Some(&json!({}))).unwrap(),
            Backchannel::None
        );
        assert_eq!(
            parse_backchannel(Some(
                &json!({"kind": "http", "url": "HTTP://W1.Example:80/x"})
            ))
            .unwrap(),
            Backchannel::Polling {
                my_url: "http://w1.example:80/x".into()
            }
        );
        assert_eq!(
            parse_backchannel(Some(&json!({"kind": "jenkins", "url": "http://j/job/1/"}))).unwrap(),
            Backchannel::Jenkins {
                my_url: "http://j/job/1/".into()
            }
        );
        assert_eq!(
            parse_backchannel(Some(&json!({"kind": "ssh", "url": 1}))).unwrap(),
            Backchannel::None
        );
        assert!(parse_backchannel(Some(&json!({"url": "http://w/"}))).is_err());
        // Only http(s) backchannels are ever contacted (divergence-policy §3).
        for bad in ["file:///etc/", "ftp://w/", "gopher://127.0.0.1:1/"] {
            let err = parse_backchannel(Some(&json!({"kind": "http", "url": bad}))).unwrap_err();
            assert!(err.contains("http or https"), "{bad}: {err}");
        }
        assert!(parse_backchannel(Some(&json!({"kind": "http"}))).is_err());
        assert!(parse_backchannel(Some(&json!("http://w/"))).is_err());
    }

    #[test]
    fn vcs_info_keeps_empty_subpath_and_skips_empty_url() {
        let item = db::queue::NextItem {
            id: 1,
            command: None,
            context: None,
            estimated_duration: None,
            campaign: "c".into(),
            refresh: None,
            requester: None,
            change_set: None,
            codebase: "x".into(),
            vcs_type: Some("git".into()),
            branch_url: Some(String::new()),
            subpath: Some(String::new()),
        };
        assert_eq!(
            json!(vcs_info(&item)),
            json!({"subpath": "", "vcs_type": "git"})
        );
    }
}
