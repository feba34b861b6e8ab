//! The finish routes (runner-http-api.md §2.9, §3.4): a worker uploads its
//! `result.json` and output files as one multipart body.
//!
//! The body is streamed part by part: a small upload's files are kept in
//! memory, a bigger one's go straight to disk, so an upload never has to
//! fit in memory (see [`UploadFiles`]).

use crate::finish::{self, FinishError, Finished, Upload, UploadFiles};
use crate::http::error::{json_response, ApiError};
use crate::http::extract::{require_worker, RunId};
use crate::http::AppState;
use crate::state;
use crate::types::ActiveRun;
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use serde::Serialize;
use serde_json::Value;
use tokio::io::AsyncWriteExt;

/// `result.json` is held in memory; no honest one comes near this.
const MAX_RESULT_JSON: usize = 16 << 20;

/// Parts up to this size are gathered whole before they are kept (see
/// `save_part`).
const SMALL_PART: usize = finish::upload::IN_MEMORY_LIMIT;

/// POST /active-runs/{run_id}/finish (internal app).
pub async fn finish(
    State(app): State<AppState>,
    RunId(run_id): RunId,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let done = match current_run(&app, &run_id).await? {
        Current::Active(run) => {
            let upload = read_upload(&headers, body, Limits::of(&app)).await?;
            finish::finish(&app, &run, upload).await
        }
        Current::Stored(stored) => {
            let upload = read_upload(&headers, body, Limits::of(&app)).await?;
            let times = upload_times(&upload)?;
            finish::answer_retry(&app, None, stored, upload.filenames, times).await
        }
    }
    .map_err(finish_error)?;
    let mut resp = json_response(StatusCode::CREATED, &body_json(&run_id, &done));
    let location = HeaderValue::from_str(&format!("/runs/{run_id}"))
        .map_err(|e| ApiError::Internal(e.into()))?;
    resp.headers_mut().insert(header::LOCATION, location);
    Ok(resp)
}

/// POST /runner/active-runs/{run_id}/finish (public app): the run is looked
/// up before the credentials are checked, as upstream does. Only the run's
/// own worker may finish it (divergence-policy §2: 403 otherwise).
pub async fn public_finish(
    State(app): State<AppState>,
    RunId(run_id): RunId,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let current = current_run(&app, &run_id).await?;
    let login = require_worker(&app, &headers).await?;
    let owner = match &current {
        Current::Active(run) => run.worker_name.as_deref(),
        Current::Stored(stored) => stored.worker.as_deref(),
    };
    if owner.is_some_and(|w| w != login) {
        return Err(ApiError::Reason {
            status: StatusCode::FORBIDDEN,
            reason: format!("run {run_id} is not assigned to worker {login}"),
        });
    }
    let upload = read_upload(&headers, body, Limits::of(&app)).await?;
    let done = match current {
        Current::Active(run) => finish::finish(&app, &run, upload).await,
        Current::Stored(stored) => {
            let times = upload_times(&upload)?;
            finish::answer_retry(&app, None, stored, upload.filenames, times).await
        }
    }
    .map_err(finish_error)?;
    Ok(json_response(
        StatusCode::CREATED,
        &body_json(&run_id, &done),
    ))
}

fn no_such_run(run_id: &str) -> ApiError {
    ApiError::Reason {
        status: StatusCode::NOT_FOUND,
        reason: format!("no such run {run_id}"),
    }
}

/// The run's start and finish time as the upload states them (a retry is
/// recognised by them), refusing a result.json a first finish would refuse.
fn upload_times(
    upload: &Upload,
) -> Result<Option<(chrono::NaiveDateTime, chrono::NaiveDateTime)>, ApiError> {
    let Some(raw) = upload.result_json.as_deref() else {
        return Ok(None);
    };
    let w = crate::types::result::WorkerResult::from_slice(raw)
        .map_err(|e| ApiError::bad_request(e.0))?;
    Ok(Some((w.start_time.utc(), w.finish_time.utc())))
}

/// What a finish request is about.
enum Current {
    /// The active run, still the current run of its queue item.
    Active(Box<ActiveRun>),
    /// A run that is stored already: this finish is a retry
    /// (divergence-policy §3).
    Stored(crate::db::runs::StoredRun),
}

/// The active run, if it is still the run its queue item is assigned to, or
/// the stored run; otherwise 404, which the worker treats as final
/// (divergence-policy §3).
async fn current_run(app: &AppState, run_id: &str) -> Result<Current, ApiError> {
    let Some((run, holder)) = state::get_with_claim(&app.runs, run_id).await? else {
        return match finish::stored_run(app, run_id)
            .await
            .map_err(finish_error)?
        {
            Some(stored) => Ok(Current::Stored(stored)),
            None => Err(no_such_run(run_id)),
        };
    };
    if holder.as_deref() != Some(run_id) {
        return Err(ApiError::Reason {
            status: StatusCode::NOT_FOUND,
            reason: format!(
                "run {run_id} is not the current run of queue item {}",
                run.queue_id
            ),
        });
    }
    Ok(Current::Active(Box::new(run)))
}

fn finish_error(e: FinishError) -> ApiError {
    match e {
        FinishError::MissingResult => bad_request_text("Missing result JSON"),
        FinishError::Invalid(r) => ApiError::bad_request(r.0),
        // A concurrent finish that outlived our wait: the worker retries
        // on 409 and its retry is then answered from the stored run.
        e @ (FinishError::RunExists(_) | FinishError::Busy(_)) => ApiError::Reason {
            status: StatusCode::CONFLICT,
            reason: e.to_string(),
        },
        e @ FinishError::StoredOtherwise(_) => ApiError::Reason {
            status: StatusCode::NOT_FOUND,
            reason: e.to_string(),
        },
        // Nothing was stored; the worker retries 5xx with back-off.
        FinishError::StoreFailed(reason) => ApiError::Reason {
            status: StatusCode::SERVICE_UNAVAILABLE,
            reason,
        },
        FinishError::Internal(e) => ApiError::Internal(e),
    }
}

#[derive(Serialize)]
struct FinishBody<'a> {
    id: &'a str,
    filenames: &'a [String],
    logs: &'a [String],
    artifacts: &'a Option<Vec<String>>,
    result: &'a Value,
}

fn body_json<'a>(run_id: &'a str, done: &'a Finished) -> FinishBody<'a> {
    FinishBody {
        id: run_id,
        filenames: &done.filenames,
        logs: &done.logs,
        artifacts: &done.artifacts,
        result: &done.result,
    }
}

/// Whether a body read failed on `--body-idle-timeout` (the server's
/// [`tower_http::timeout::TimeoutBody`]), somewhere in the error's chain.
fn is_body_timeout(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if err.is::<tower_http::timeout::TimeoutError>() {
            return true;
        }
        cur = err.source();
    }
    false
}

fn bad_request_text(text: impl Into<String>) -> ApiError {
    ApiError::Text {
        status: StatusCode::BAD_REQUEST,
        text: text.into(),
    }
}

/// The boundary of a `multipart/<any subtype>` content type.
pub fn multipart_boundary(content_type: &str) -> Option<String> {
    let mut params = content_type.split(';');
    let mime = params.next()?.trim();
    let (kind, _) = mime.split_once('/')?;
    if !kind.trim().eq_ignore_ascii_case("multipart") {
        return None;
    }
    params.find_map(|p| {
        let (k, v) = p.split_once('=')?;
        if !k.trim().eq_ignore_ascii_case("boundary") {
            return None;
        }
        let v = v.trim();
        let v = v
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(v);
        (!v.is_empty()).then(|| v.to_string())
    })
}

/// Longest file name a filesystem component holds (ext4, tmpfs, XFS).
const NAME_MAX: usize = 255;

/// Uploaded names become paths in the temporary directory: refuse any that
/// could point elsewhere (QH-5, divergence-policy §2), and any the
/// filesystem cannot hold, a log's with the `.gz` it is stored under (a 500
/// upstream; 400 here, nothing stored, the run still active).
fn check_filename(name: &str) -> Result<(), ApiError> {
    if !crate::storage::is_plain_name(name) {
        return Err(ApiError::bad_request(format!(
            "invalid upload filename {}",
            crate::py::repr::repr_str(name)
        )));
    }
    let stored_len = name.len() + if finish::is_log_filename(name) { 3 } else { 0 };
    if stored_len > NAME_MAX {
        return Err(ApiError::bad_request(format!(
            "upload filename too long: {} bytes (at most {} for this name)",
            name.len(),
            NAME_MAX - (stored_len - name.len())
        )));
    }
    Ok(())
}

/// How much one upload may carry (flags `--max-upload-parts`/`-bytes`).
#[derive(Debug, Clone, Copy)]
struct Limits {
    parts: usize,
    bytes: u64,
}

impl Limits {
    fn of(app: &AppState) -> Limits {
        Limits {
            parts: app.settings.max_upload_parts,
            bytes: app.settings.max_upload_bytes,
        }
    }
}

/// Read the multipart body: `result.json` and the files.
async fn read_upload(headers: &HeaderMap, body: Body, limits: Limits) -> Result<Upload, ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let boundary = multipart_boundary(content_type).ok_or_else(|| {
        ApiError::bad_request(format!(
            "expected a multipart body, got content type {}",
            crate::py::repr::repr_str(content_type)
        ))
    })?;
    let mut files = UploadFiles::default();
    let mut multipart = multer::Multipart::new(body.into_data_stream(), boundary);
    let mut filenames = Vec::new();
    let mut result_json = None;
    let mut bytes = 0;
    let mut parts = 0;
    while let Some(mut field) = multipart.next_field().await.map_err(read_error)? {
        parts += 1;
        if parts > limits.parts {
            return Err(ApiError::bad_request(format!(
                "too many parts: at most {} per upload",
                limits.parts
            )));
        }
        if field
            .content_type()
            .is_some_and(|m| m.type_().as_str().eq_ignore_ascii_case("multipart"))
        {
            return Err(bad_request_text("nested multi-part"));
        }
        let name = match field.file_name() {
            Some("result.json") => {
                // Several result.json parts: the last one wins.
                result_json = Some(read_result_json(&mut field).await?);
                continue;
            }
            Some(name) => name.to_string(),
            None => return Err(bad_request_text("Part without filename")),
        };
        check_filename(&name)?;
        save_part(&mut field, &mut files, &name, &mut bytes, limits.bytes).await?;
        filenames.push(name);
    }
    Ok(Upload {
        files,
        filenames,
        result_json,
        bytes,
    })
}

/// How a failure to read the body is answered: a body that stopped arriving
/// is a 408, a malformed one a 400.
fn read_error(e: multer::Error) -> ApiError {
    if is_body_timeout(&e) {
        ApiError::Reason {
            status: StatusCode::REQUEST_TIMEOUT,
            reason: "the request body stopped arriving".into(),
        }
    } else {
        bad_request_text(e.to_string())
    }
}

/// A `result.json` part, held in memory (bounded by [`MAX_RESULT_JSON`]).
async fn read_result_json(field: &mut multer::Field<'_>) -> Result<Vec<u8>, ApiError> {
    let mut buf = Vec::new();
    while let Some(chunk) = field.chunk().await.map_err(read_error)? {
        if buf.len() + chunk.len() > MAX_RESULT_JSON {
            return Err(ApiError::bad_request("result.json is too large"));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf)
}

/// A file part kept as file `name` of `files`; `bytes` counts the upload's
/// file bytes, which may not pass `max_bytes`.
async fn save_part(
    field: &mut multer::Field<'_>,
    files: &mut UploadFiles,
    name: &str,
    bytes: &mut u64,
    max_bytes: u64,
) -> Result<(), ApiError> {
    let io = |e: std::io::Error| ApiError::Internal(e.into());
    // A small part is gathered and kept whole (in memory while the upload
    // is small, else with one inline write: tokio::fs would hand every call
    // to the blocking pool). A big one is streamed to disk, so it never has
    // to fit in memory.
    let mut head = Vec::new();
    let mut file: Option<tokio::fs::File> = None;
    while let Some(chunk) = field.chunk().await.map_err(read_error)? {
        *bytes += chunk.len() as u64;
        if *bytes > max_bytes {
            return Err(ApiError::bad_request(format!(
                "upload too large: at most {max_bytes} bytes of files"
            )));
        }
        match &mut file {
            Some(f) => f.write_all(&chunk).await.map_err(io)?,
            None if head.len() + chunk.len() <= SMALL_PART => head.extend_from_slice(&chunk),
            None => {
                let path = files.dir().map_err(io)?.join(name);
                let mut f = tokio::fs::File::create(path).await.map_err(io)?;
                f.write_all(&head).await.map_err(io)?;
                f.write_all(&chunk).await.map_err(io)?;
                head = Vec::new();
                file = Some(f);
            }
        }
    }
    match file {
        Some(mut f) => f.flush().await.map_err(io)?,
        None => files.put(name, head).map_err(io)?,
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEST_LIMITS: Limits = Limits {
        parts: 3,
        bytes: 1 << 20,
    };

    #[tokio::test]
    async fn uploads_past_the_limits_are_refused() {
        let parts: Vec<(&str, Option<&str>, &str, &str)> = (0..4)
            .map(|_| ("file", Some("a.log"), "text/plain", "x"))
            .collect();
        let (h, b) = body(&parts);
        match read_upload(&h, b, TEST_LIMITS).await.unwrap_err() {
            ApiError::Reason { status, reason } => {
                assert_eq!(status, StatusCode::BAD_REQUEST);
                assert!(reason.contains("too many parts"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        let big = "y".repeat((1 << 20) + 1);
        let (h, b) = body(&[("file", Some("big.deb"), "application/octet-stream", &big)]);
        match read_upload(&h, b, TEST_LIMITS).await.unwrap_err() {
            ApiError::Reason { reason, .. } => assert!(reason.contains("too large"), "{reason}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn any_multipart_subtype_has_a_boundary() {
        assert_eq!(
            multipart_boundary("multipart/form-data; boundary=abc").as_deref(),
            Some("abc")
        );
        assert_eq!(
            multipart_boundary("Multipart/Mixed; charset=x; Boundary=\"a b\"").as_deref(),
            Some("a b")
        );
        assert_eq!(multipart_boundary("application/json"), None);
        assert_eq!(multipart_boundary("multipart/form-data"), None);
    }

    #[test]
    fn upload_names_cannot_leave_the_directory() {
        for bad in ["../x", "a/b", "a\\b", ".", "..", ""] {
            assert!(check_filename(bad).is_err(), "{bad}");
        }
        assert!(check_filename("debpkg_1.0_all.deb").is_ok());
        // What the filesystem can hold, a log with its `.gz` suffix.
        assert!(check_filename(&"r".repeat(255)).is_ok());
        assert!(check_filename(&"r".repeat(256)).is_err());
        assert!(check_filename(&format!("{}.log", "r".repeat(248))).is_ok());
        assert!(check_filename(&format!("{}.log", "r".repeat(249))).is_err());
    }

    fn body(parts: &[(&str, Option<&str>, &str, &str)]) -> (HeaderMap, Body) {
        let mut s = String::new();
        for (name, filename, ctype, payload) in parts {
            s.push_str("--XyZ\r\n");
            match filename {
                Some(f) => s.push_str(&format!(
                    "Content-Disposition: form-data; name=\"{name}\"; filename=\"{f}\"\r\n"
                )),
                None => s.push_str(&format!(
                    "Content-Disposition: form-data; name=\"{name}\"\r\n"
                )),
            }
            s.push_str(&format!("Content-Type: {ctype}\r\n\r\n{payload}\r\n"));
        }
        s.push_str("--XyZ--\r\n");
        let mut h = HeaderMap::new();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("multipart/form-data; boundary=XyZ"),
        );
        (h, Body::from(s))
    }

    #[tokio::test]
    async fn small_parts_are_kept_in_memory_and_result_json_kept() {
        let (h, b) = body(&[
            (
                "metadata",
                Some("result.json"),
                "application/json",
                "{\"code\": null}",
            ),
            ("file", Some("worker.log"), "text/plain", "line\n"),
            ("file", Some("worker.log"), "text/plain", "again\n"),
        ]);
        let mut up = read_upload(&h, b, TEST_LIMITS).await.unwrap();
        assert_eq!(up.result_json.as_deref(), Some(&b"{\"code\": null}"[..]));
        assert_eq!(up.filenames, ["worker.log", "worker.log"]);
        // A small upload stays in memory, the last part of a name winning.
        assert!(up.files.in_memory());
        assert_eq!(up.files.names().unwrap(), ["worker.log"]);
        assert_eq!(
            std::fs::read(up.files.dir().unwrap().join("worker.log")).unwrap(),
            b"again\n"
        );
    }

    #[tokio::test]
    async fn a_part_too_big_to_hold_moves_the_upload_to_disk() {
        let big = "b".repeat(SMALL_PART + 1);
        let (h, b) = body(&[
            ("file", Some("small.log"), "text/plain", "s"),
            ("file", Some("big.log"), "text/plain", &big),
        ]);
        let mut up = read_upload(&h, b, TEST_LIMITS).await.unwrap();
        assert!(!up.files.in_memory());
        assert_eq!(up.bytes, big.len() as u64 + 1);
        let dir = up.files.dir().unwrap().to_path_buf();
        assert_eq!(std::fs::read(dir.join("small.log")).unwrap(), b"s");
        assert_eq!(std::fs::read(dir.join("big.log")).unwrap(), big.as_bytes());
    }

    #[tokio::test]
    async fn malformed_uploads_are_refused() {
        let text = |e: ApiError| match e {
            ApiError::Text { status, text } => (status.as_u16(), text),
            ApiError::Reason { status, reason } => (status.as_u16(), reason),
            other => (500, other.to_string()),
        };
        let (h, b) = body(&[("x", None, "text/plain", "y")]);
        assert_eq!(
            text(read_upload(&h, b, TEST_LIMITS).await.unwrap_err()),
            (400, "Part without filename".into())
        );
        let (h, b) = body(&[("x", Some("a"), "multipart/mixed; boundary=q", "")]);
        assert_eq!(
            text(read_upload(&h, b, TEST_LIMITS).await.unwrap_err()),
            (400, "nested multi-part".into())
        );
        let (h, b) = body(&[("x", Some("../escape"), "text/plain", "y")]);
        assert_eq!(
            text(read_upload(&h, b, TEST_LIMITS).await.unwrap_err()).0,
            400
        );
        let mut h = HeaderMap::new();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        let e = read_upload(&h, Body::from("{}"), TEST_LIMITS)
            .await
            .unwrap_err();
        assert!(matches!(e, ApiError::Reason { .. }));
    }
}
