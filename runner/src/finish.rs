//! Finishing runs: the shared finish procedure of both finish routes
//! (runner-http-api.md §4) and `finish_run`, which stores any finished run,
//! worker-reported or aborted (runner-internals.md §7).
//!
//! Everything a worker sent is validated before anything is stored, so a
//! refused finish (400) leaves no trace and the run stays active.

use crate::app::App;
use crate::db;
use crate::state;
use crate::storage::{artifacts, logs};
use crate::types::result::{
    BuilderResult, DebianResult, InvalidResult, JanitorResult, WorkerResult,
};
use crate::types::ActiveRun;
use chrono::{NaiveDateTime, Timelike};
use std::path::PathBuf;
use std::sync::Arc;

/// `.changes` files are read whole; anything bigger is not a `.changes` file.
const MAX_CHANGES_SIZE: u64 = 16 << 20;

pub mod upload;

pub use upload::UploadFiles;

/// What the worker uploaded: the files (in memory or in a private temporary
/// directory), their names in upload order, and the `result.json` bytes if
/// sent.
#[derive(Debug)]
pub struct Upload {
    pub files: UploadFiles,
    pub filenames: Vec<String>,
    pub result_json: Option<Vec<u8>>,
    /// Bytes of the files.
    pub bytes: u64,
}

/// Uploads up to this size are listed, compressed and deleted on the async
/// thread: a few small-file syscalls cost less than two thread hand-offs.
pub const SMALL_UPLOAD: u64 = 256 << 10;

/// `f` over the files: inline for a small upload (in memory, or a few small
/// files), on the blocking pool for a big one.
async fn over_files<T: Send + 'static>(
    files: UploadFiles,
    small: bool,
    f: impl FnOnce(&UploadFiles) -> T + Send + 'static,
) -> Result<(UploadFiles, T), FinishError> {
    if small {
        let out = f(&files);
        return Ok((files, out));
    }
    Ok(tokio::task::spawn_blocking(move || {
        let out = f(&files);
        (files, out)
    })
    .await
    .map_err(anyhow::Error::from)?)
}

#[derive(Debug, thiserror::Error)]
pub enum FinishError {
    #[error("Missing result JSON")]
    MissingResult,
    #[error(transparent)]
    Invalid(#[from] InvalidResult),
    /// The run row exists already (a second finish of the same run).
    #[error("{0}")]
    RunExists(String),
    /// The log store (and the backup, if any) refused a log: nothing is
    /// stored and the worker may retry (503).
    #[error("{0}")]
    StoreFailed(String),
    /// The run was stored by something other than this upload (an abort):
    /// the upload cannot be stored any more (404, final for the worker).
    #[error("the run was stored already, as {0}, not from this upload")]
    StoredOtherwise(String),
    /// Another finish (or abort) of the run holds its finish lock.
    #[error("run {0} is being finished by another request")]
    Busy(String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<sqlx::Error> for FinishError {
    fn from(e: sqlx::Error) -> Self {
        FinishError::Internal(e.into())
    }
}

/// What a successful finish answers with.
#[derive(Debug)]
pub struct Finished {
    pub filenames: Vec<String>,
    pub logs: Vec<String>,
    /// `None` without a build target or after a failed upload.
    pub artifacts: Option<Vec<String>>,
    /// `JanitorResult.json()`: as stored now, or as stored by an earlier
    /// attempt when this finish is a retry.
    pub result: serde_json::Value,
}

/// How long a finish waits for a concurrent finish of the same run (the
/// worker's own retry racing its first attempt) before answering 409.
const FINISH_LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// The answer to a finish of a run that is stored already (the worker's
/// retry after a lost 201, divergence-policy §3): the stored result, after
/// completing the release in Redis if the first attempt could not (the
/// `result` message is then published, once). `run` is the still-active
/// run when there is one.
pub async fn answer_stored(
    app: &Arc<App>,
    run: Option<&ActiveRun>,
    stored: db::runs::StoredRun,
    filenames: Vec<String>,
) -> Result<Finished, FinishError> {
    if let Some(run) = run {
        let text = crate::py::json::to_string(&stored.result);
        let released = state::release_finished(&app.runs, run, &text, false, None)
            .await
            .map_err(anyhow::Error::from)?;
        if released.existed {
            tracing::info!(run_id = %run.log_id, "retried finish completed the release of a stored run");
            after_release(
                app,
                run,
                stored.result["codebase"].as_str().unwrap_or_default(),
                None,
                released.snapshot,
            )
            .await?;
        }
    }
    Ok(Finished {
        filenames,
        logs: stored.logfilenames,
        artifacts: None,
        result: stored.result,
    })
}

/// The stored run `run_id`, if a finish stored it already.
pub async fn stored_run(
    app: &App,
    run_id: &str,
) -> Result<Option<db::runs::StoredRun>, FinishError> {
    let mut conn = app.db.acquire().await?;
    Ok(db::runs::stored_run(&mut conn, run_id).await?)
}

/// Python's `is_log_filename` (runner-internals.md §15.1).
pub fn is_log_filename(name: &str) -> bool {
    let parts: Vec<&str> = name.split('.').collect();
    match parts.as_slice() {
        [.., "log"] => true,
        [_, "log", n] => n.chars().all(char::is_numeric),
        _ => false,
    }
}

/// Names of the uploaded files that are logs.
pub fn gather_logs(files: &UploadFiles) -> std::io::Result<Vec<String>> {
    let mut names = files.names()?;
    names.retain(|n| is_log_filename(n));
    Ok(names)
}

/// The fields of a `.changes` file the runner uses.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Changes {
    pub source: Option<String>,
    pub version: Option<String>,
    pub distribution: Option<String>,
    /// Names in the `Files` field.
    pub files: Vec<String>,
}

/// Parse the first deb822 paragraph of a `.changes` file (an OpenPGP
/// clear-signature wrapper is skipped). Field names are case-insensitive.
pub fn parse_changes(text: &str) -> Changes {
    let mut lines = text.lines().peekable();
    if lines
        .peek()
        .is_some_and(|l| l.starts_with("-----BEGIN PGP SIGNED MESSAGE-----"))
    {
        // Armor headers end at the first blank line.
        for l in lines.by_ref() {
            if l.trim().is_empty() {
                break;
            }
        }
    }
    let mut fields: Vec<(String, String)> = Vec::new();
    let mut started = false;
    for line in lines {
        if line.starts_with("-----BEGIN PGP SIGNATURE-----") {
            break;
        }
        if line.trim().is_empty() {
            if started {
                break;
            }
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        if line.starts_with([' ', '\t']) {
            if let Some((_, v)) = fields.last_mut() {
                v.push('\n');
                v.push_str(line.trim());
            }
            continue;
        }
        if let Some((k, v)) = line.split_once(':') {
            started = true;
            fields.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    let get = |k: &str| fields.iter().find(|(f, _)| f == k).map(|(_, v)| v.clone());
    Changes {
        source: get("source"),
        version: get("version"),
        distribution: get("distribution"),
        files: get("files")
            .map(|v| {
                v.lines()
                    .filter_map(|l| {
                        let tokens: Vec<&str> = l.split_whitespace().collect();
                        (tokens.len() >= 5).then(|| tokens[tokens.len() - 1].to_string())
                    })
                    .collect()
            })
            .unwrap_or_default(),
    }
}

/// `find_changes` plus the artifact list: fills the Debian result from the
/// uploaded `.changes` files. None found → the result stays falsy. Files
/// disagreeing on Source/Version/Distribution, or lacking one, are refused
/// (a 500 upstream).
pub fn scan_debian_output(
    files: &UploadFiles,
    result: &mut DebianResult,
) -> Result<(), FinishError> {
    let mut names = files.names().map_err(anyhow::Error::from)?;
    names.retain(|n| n.ends_with(".changes"));
    if names.is_empty() {
        tracing::info!("no changes file found in the upload");
        return Ok(());
    }
    let (mut source, mut version, mut distribution) = (None, None, None);
    let mut binary_packages = Vec::new();
    let mut artifacts = Vec::new();
    for name in &names {
        let text = files
            .read_at_most(name, MAX_CHANGES_SIZE)
            .map_err(anyhow::Error::from)?
            .and_then(|raw| String::from_utf8(raw).ok());
        // PostgreSQL text cannot hold NUL: such a file is no `.changes` file.
        let Some(text) = text.filter(|t| !t.contains('\0')) else {
            return Err(InvalidResult(format!("{name} is not a readable .changes file")).into());
        };
        let c = parse_changes(&text);
        for (field, value, seen) in [
            ("Version", &c.version, &mut version),
            ("Source", &c.source, &mut source),
            ("Distribution", &c.distribution, &mut distribution),
        ] {
            let Some(value) = value else {
                return Err(InvalidResult(format!("{name} has no {field} field")).into());
            };
            match seen {
                Some(prev) if prev != value => {
                    return Err(InvalidResult(format!(
                        "inconsistent changes files: {field} {value} in {name}, {prev} before"
                    ))
                    .into())
                }
                _ => *seen = Some(value.clone()),
            }
        }
        binary_packages.extend(
            c.files
                .iter()
                .filter(|f| f.ends_with(".deb"))
                .map(|f| f.split('_').next().unwrap_or_default().to_string()),
        );
        artifacts.extend(c.files.iter().cloned());
        artifacts.push(name.clone());
    }
    result.source = source;
    result.build_version = version;
    result.build_distribution = distribution;
    result.binary_packages = Some(binary_packages);
    result.changes_filenames = Some(names);
    result.artifact_names = artifacts;
    Ok(())
}

/// The shared finish procedure (http-api §4) for an uploaded result.
pub async fn finish(
    app: &Arc<App>,
    run: &ActiveRun,
    upload: Upload,
) -> Result<Finished, FinishError> {
    let Upload {
        mut files,
        filenames,
        result_json,
        bytes,
    } = upload;
    let small = bytes <= SMALL_UPLOAD;
    let raw = result_json.ok_or(FinishError::MissingResult)?;
    let mut worker = WorkerResult::from_slice(&raw)?;

    // Scanning the build output may refuse the upload, so it precedes any storing.
    if let Some(BuilderResult::Debian(d)) = &mut worker.builder_result {
        let mut scanned = std::mem::take(d);
        let (back, outcome) = over_files(files, small, move |f| {
            scan_debian_output(f, &mut scanned).map(|_| scanned)
        })
        .await?;
        files = back;
        *d = outcome?;
    }
    let (files, logs) = over_files(files, small, gather_logs).await?;
    let logs = logs.map_err(anyhow::Error::from)?;
    let result = JanitorResult::from_worker(run, worker, logs.clone());

    // Nothing is written to the stores before this finish owns the run: a
    // concurrent or late second finish leaves no trace (divergence-policy §3).
    let lock = state::FinishLock::acquire(&app.runs, &run.log_id, FINISH_LOCK_WAIT)
        .await
        .map_err(anyhow::Error::from)?
        .ok_or_else(|| FinishError::Busy(run.log_id.clone()))?;
    // Owned by a task of its own: a worker that disconnects mid-request
    // cancels the handler, never a half-done store or the lock's release.
    let (app, run) = (app.clone(), run.clone());
    tokio::spawn(async move {
        let outcome = finish_owned(&app, &run, &lock, files, filenames, logs, small, result).await;
        if let Err(e) = lock.release(&app.runs).await {
            tracing::warn!(run_id = %run.log_id, error = %e, "releasing the finish lock failed");
        }
        outcome
    })
    .await
    .map_err(anyhow::Error::from)?
}

/// Is `stored` what an earlier attempt of this very upload stored? The
/// worker's retry sends the same times; an abort by the watchdog or by
/// assign stored its own finish time.
pub fn same_attempt(
    start: NaiveDateTime,
    finish: NaiveDateTime,
    stored: &db::runs::StoredRun,
) -> bool {
    let micros = |t: NaiveDateTime| {
        let t = t.with_nanosecond(t.nanosecond() / 1000 * 1000).unwrap_or(t);
        serde_json::Value::String(crate::types::time::isoformat(&t))
    };
    stored.result.get("start_time") == Some(&micros(start))
        && stored.result.get("finish_time") == Some(&micros(finish))
}

/// The answer to a finish of a stored run: the stored result when this
/// upload is a retry of the attempt that stored it, else 404 (the run was
/// stored otherwise, e.g. aborted; the worker treats 404 as final).
pub async fn answer_retry(
    app: &Arc<App>,
    run: Option<&ActiveRun>,
    stored: db::runs::StoredRun,
    filenames: Vec<String>,
    times: Option<(NaiveDateTime, NaiveDateTime)>,
) -> Result<Finished, FinishError> {
    let code = stored.result["code"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let same = times.is_some_and(|(start, finish)| same_attempt(start, finish, &stored));
    let answer = answer_stored(app, run, stored, filenames).await?;
    if same {
        Ok(answer)
    } else {
        Err(FinishError::StoredOtherwise(code))
    }
}

/// The rest of [`finish`], holding the run's finish lock.
#[allow(clippy::too_many_arguments)]
async fn finish_owned(
    app: &Arc<App>,
    run: &ActiveRun,
    lock: &state::FinishLock,
    mut files: UploadFiles,
    filenames: Vec<String>,
    logs: Vec<String>,
    small: bool,
    mut result: JanitorResult,
) -> Result<Finished, FinishError> {
    let result = &mut result;
    // Stored meanwhile by the attempt we waited for, or by one that
    // crashed between its commit and its release in Redis.
    if let Some(stored) = stored_run(app, &run.log_id).await? {
        let times = (result.start_time.utc(), result.finish_time.utc());
        return answer_retry(app, Some(run), stored, filenames, Some(times)).await;
    }
    import_logs(app, run, &files, &logs, result).await?;

    let artifacts = match &result.builder_result {
        Some(b) => {
            let names = b.artifact_names();
            // The stores copy artifacts from files: an upload held in memory
            // moves to disk only when there are some (none is read otherwise).
            let dir = if names.is_empty() {
                PathBuf::new()
            } else {
                files
                    .dir()
                    .map_err(|e| {
                        FinishError::StoreFailed(format!("keeping the artifacts failed: {e}"))
                    })?
                    .to_path_buf()
            };
            match artifacts::store_with_backup(
                app.storage.artifacts.as_ref(),
                app.storage.backup_artifacts.as_deref(),
                &dir,
                &run.log_id,
                &names,
            )
            .await
            {
                Ok(()) => Some(names),
                Err(e) => {
                    result.code = "artifact-upload-failed".into();
                    result.description = Some(e.to_string());
                    app.metrics.artifact_upload_failed.inc();
                    None
                }
            }
        }
        None => None,
    };
    // Big uploads take a moment to delete; keep that off the async workers.
    if small {
        drop(files);
    } else {
        let _ = tokio::task::spawn_blocking(move || drop(files)).await;
    }

    store_finished(app, run, lock, result).await?;
    Ok(Finished {
        filenames,
        logs,
        artifacts,
        result: result.to_json(),
    })
}

/// Import every log concurrently, keyed by the active run's codebase.
async fn import_logs(
    app: &App,
    run: &ActiveRun,
    files: &UploadFiles,
    names: &[String],
    result: &JanitorResult,
) -> Result<(), FinishError> {
    let codebase = run.codebase.clone().unwrap_or_default();
    let mtime = result
        .finish_time
        .utc()
        .and_utc()
        .timestamp()
        .clamp(0, u32::MAX as i64) as u32;
    let now = app.clock.now_naive();
    let jobs = names.iter().map(|name| {
        let src = files.source(name);
        let codebase = &codebase;
        async move {
            let src = src.map_err(|e| FinishError::Internal(e.into()))?;
            logs::import_log(
                app.storage.logs.as_ref(),
                app.storage.backup_logs.as_deref(),
                &app.metrics,
                codebase,
                &run.log_id,
                name,
                &src,
                mtime,
                now,
            )
            .await
            .map_err(|e| FinishError::StoreFailed(format!("storing log {name} failed: {e}")))
        }
    });
    futures::future::try_join_all(jobs).await?;
    Ok(())
}

/// Store a finished run (internals §7.1) that no worker uploaded (an abort
/// by assign or the watchdog), under the run's finish lock: a run being
/// finished by another request (or runner process) is left to it.
pub async fn finish_run(
    app: &Arc<App>,
    run: &ActiveRun,
    result: &mut JanitorResult,
) -> Result<(), FinishError> {
    let lock = state::FinishLock::try_acquire(&app.runs, &run.log_id)
        .await
        .map_err(anyhow::Error::from)?
        .ok_or_else(|| FinishError::Busy(run.log_id.clone()))?;
    let outcome = store_finished(app, run, &lock, result).await;
    if let Err(e) = lock.release(&app.runs).await {
        tracing::warn!(run_id = %run.log_id, error = %e, "releasing the finish lock failed");
    }
    outcome
}

/// Store a finished run (internals §7.1): run row, result branches, build
/// record, queue row deleted; then publications, unclaim and the
/// background reschedule. Fills `result.change_set` when the run had none.
/// The caller holds the run's finish lock.
async fn store_finished(
    app: &Arc<App>,
    run: &ActiveRun,
    lock: &state::FinishLock,
    result: &mut JanitorResult,
) -> Result<(), FinishError> {
    let new_change_set = result.change_set.as_deref().is_none_or(str::is_empty);
    if new_change_set {
        result.change_set = Some(result.log_id.clone());
    }
    let change_set = result.change_set.clone().unwrap_or_default();
    let branches = result_branches(result);
    let record = db::runs::FinishedRun {
        run: run_record(run, result, result.worker_name.as_deref(), &change_set),
        new_change_set,
        branches: &branches,
        build: debian_build_record(result),
        queue: db::runs::QueueRow {
            id: run.queue_id,
            codebase: run.codebase.as_deref(),
            campaign: &run.campaign,
            change_set: run.change_set.as_deref(),
        },
    };
    let mut conn = app.db.acquire().await?;
    let stored = match db::runs::store_finished(&mut conn, &record).await {
        Ok(stored) => stored,
        Err(e) if db::runs::is_run_exists(&e) => {
            drop(conn);
            // Stored by an attempt that could not release it: complete
            // that release with the stored result.
            if let Some(stored) = stored_run(app, &result.log_id).await? {
                answer_stored(app, Some(run), stored, Vec::new()).await?;
            }
            return Err(FinishError::RunExists(result.log_id.clone()));
        }
        Err(e) => return Err(e.into()),
    };
    drop(conn);
    // Upstream loses the result on the foreign-key error; the run is kept
    // with the worker unset (divergence-policy §2).
    if let (false, Some(w)) = (stored.worker_known, result.worker_name.as_deref()) {
        tracing::warn!(run_id = %result.log_id, worker = w, "worker not registered; stored the run without it");
    }
    count_stored(app, run, result);

    let released = state::release_finished(
        &app.runs,
        run,
        &crate::py::json::to_string(&result.to_json()),
        true,
        Some(lock),
    )
    .await
    .map_err(anyhow::Error::from)?;
    after_release(
        app,
        run,
        &result.codebase,
        result.context.clone(),
        released.snapshot,
    )
    .await
}

/// The `run` row of a stored result.
fn run_record<'a>(
    run: &'a ActiveRun,
    result: &'a JanitorResult,
    worker: Option<&'a str>,
    change_set: &'a str,
) -> db::runs::RunRecord<'a> {
    let json_text =
        |v: &serde_json::Value| crate::py::repr::truthy(v).then(|| crate::py::json::to_string(v));
    db::runs::RunRecord {
        id: &result.log_id,
        command: &run.command,
        description: result.description.as_deref(),
        result_code: &result.code,
        start_time: result.start_time.utc(),
        finish_time: result.finish_time.utc(),
        instigated_context: run.instigated_context.as_str(),
        context: result.context.as_deref(),
        main_branch_revision: result.main_branch_revision.as_deref(),
        revision: result.revision.as_deref(),
        result: json_text(&result.codemod),
        campaign: &run.campaign,
        vcs_type: result.vcs_type.as_deref(),
        branch_url: result.branch_url.as_deref(),
        subpath: result.subpath.as_deref(),
        logfilenames: &result.logfilenames,
        value: result.value,
        worker,
        result_tags: result.tags.as_ref().map(|ts| {
            ts.iter()
                .map(|t| (t.name.clone(), t.revision.clone()))
                .collect()
        }),
        resume_from: result.resume_from.as_deref(),
        // Python stores any non-None value here, falsy ones included.
        failure_details: (!result.failure_details.is_null())
            .then(|| crate::py::json::to_string(&result.failure_details)),
        failure_stage: result.failure_stage.as_deref(),
        target_branch_url: result.target_branch_url.as_deref(),
        change_set,
        failure_transient: result.transient,
        codebase: &result.codebase,
    }
}

/// The `new_result_branch` rows of a stored result.
fn result_branches(result: &JanitorResult) -> Vec<db::runs::ResultBranchRow> {
    result
        .branches
        .iter()
        .flatten()
        .map(|b| {
            (
                b.role.clone(),
                b.remote_name.clone(),
                b.base_revision.clone(),
                b.revision.clone(),
            )
        })
        .collect()
}

/// The `debian_build` row, for a Debian build that produced changes.
fn debian_build_record(result: &JanitorResult) -> Option<db::runs::DebianBuildRecord<'_>> {
    let Some(BuilderResult::Debian(d)) = &result.builder_result else {
        return None;
    };
    let (true, Some(version)) = (d.changes_filenames.is_some(), &d.build_version) else {
        return None;
    };
    Some(db::runs::DebianBuildRecord {
        run_id: &result.log_id,
        source: d.source.as_deref(),
        version,
        distribution: d.build_distribution.as_deref(),
        lintian_result: (!d.lintian_result.is_null())
            .then(|| crate::py::json::to_string(&d.lintian_result)),
        binary_packages: d.binary_packages.as_deref(),
    })
}

/// Metrics and the log line of a stored run.
fn count_stored(app: &App, run: &ActiveRun, result: &JanitorResult) {
    // Counted once the run is stored, so a refused or duplicate attempt
    // never counts (exact across runner processes).
    app.metrics
        .result
        .with_label_values(&[
            run.campaign.as_str(),
            &app.metrics.result_code_label.of(&result.code),
        ])
        .inc();
    app.metrics
        .build_duration
        .with_label_values(&[run.campaign.as_str()])
        .observe(result.duration());
    tracing::info!(
        run_id = %result.log_id,
        codebase = %result.codebase,
        campaign = %run.campaign,
        code = %result.code,
        duration = result.duration(),
        "run finished"
    );
}

/// What follows the release of a stored run, whichever attempt did it: the
/// status publication (from the release's snapshot while it is current),
/// the last-success gauge and the background reschedule.
async fn after_release(
    app: &Arc<App>,
    run: &ActiveRun,
    codebase: &str,
    context: Option<String>,
    snapshot: Option<state::Snapshot>,
) -> Result<(), FinishError> {
    state::publish_status_with(&app.runs, snapshot)
        .await
        .map_err(anyhow::Error::from)?;
    app.metrics
        .job_last_success
        .set(app.clock.now().timestamp_micros() as f64 / 1e6);
    crate::schedule::spawn_reschedule_after_run(
        app.clone(),
        codebase.to_string(),
        run.campaign.clone(),
        run.change_set.clone(),
        context,
    )
    .await;
    Ok(())
}

#[cfg(test)]
mod tests;
