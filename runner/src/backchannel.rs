//! Talking back to the worker of an active run (runner-internals.md §6.3–§6.5):
//! list and fetch its logs, kill it, ping it.
//!
//! HTTP goes through `reqwest` with rustls (ring provider, platform
//! certificate verifier), so `https://` workers and Jenkins are reachable.
//!
//! A backchannel URL comes from the worker, so every request is treated as
//! hostile (divergence-policy §3): redirects are never followed (a redirect
//! to the admin port would read it back), only http/https URLs are used,
//! and bodies are read up to a bound; a live log is streamed, never
//! buffered whole.

use crate::types::Backchannel;
use bytes::Bytes;
use reqwest::{header, Client, Method, StatusCode};
use serde_json::Value;
use std::sync::OnceLock;
use std::time::Duration;

/// Timeout of a ping (`KEEPALIVE_TIMEOUT` upstream).
const PING_TIMEOUT: Duration = Duration::from_secs(60);
/// aiohttp's default total timeout, used upstream for every other call.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);
/// Connecting is quick or it fails: a peer that never answers SYN must not
/// hold a request (or the watchdog) for the whole timeout.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// A run id as the worker answers it (a JSON string of a UUID) is ~40 bytes.
pub const MAX_LOG_ID_BODY: usize = 4 << 10;
/// Log listings and Jenkins job documents: a few KiB in practice.
pub const MAX_JSON_BODY: usize = 1 << 20;

/// The one file a Jenkins backchannel serves.
pub const JENKINS_LOG: &str = "worker.log";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BackchannelError {
    /// This kind of backchannel cannot do that (Python's `NotImplementedError`).
    #[error("not supported by this backchannel")]
    NotSupported,
    /// The worker has no such log file.
    #[error("No such log file: {0}")]
    NotFound(String),
    /// The worker answered 404/405 for a route it would need (the real
    /// worker serves neither `/kill` nor, by default, `/logs`).
    #[error("{0}")]
    Lacks(String),
    /// The peer could not be reached or answered with an error status; a
    /// later attempt may succeed (for a ping: `PingTimeout`/`PingFailure`).
    #[error("{0}")]
    Unreachable(String),
    /// The peer answered and the answer means the run is gone (`PingFatalFailure`).
    #[error("{0}")]
    Fatal(String),
    /// The peer answered something we cannot use (bad JSON, bad UTF-8):
    /// neither retryable nor fatal, as an uncaught exception upstream.
    #[error("{0}")]
    Invalid(String),
}

fn client() -> &'static Client {
    static CLIENT: OnceLock<Client> = OnceLock::new();
    CLIENT.get_or_init(|| {
        crate::tls::client_builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(CONNECT_TIMEOUT)
            .build()
            .expect("building the backchannel HTTP client")
    })
}

/// Only http and https backchannels are contacted (a 400 at assign
/// otherwise, divergence-policy §3).
pub fn check_scheme(url: &url::Url) -> Result<(), String> {
    match url.scheme() {
        "http" | "https" => Ok(()),
        other => Err(format!(
            "backchannel url must be http or https, not {other}"
        )),
    }
}

/// `url` with any `user:password@` removed from its authority, the rest of
/// the text kept as it is.
pub fn without_userinfo(url: &str) -> String {
    let Some(idx) = url.find("://") else {
        return url.to_string();
    };
    let rest = &url[idx + 3..];
    let auth_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..auth_end].rfind('@') {
        Some(at) => format!("{}{}", &url[..idx + 3], &rest[at + 1..]),
        None => url.to_string(),
    }
}

/// The body of `resp`, refused once it grows past `limit` bytes.
async fn read_limited(mut resp: reqwest::Response, limit: usize) -> Result<Bytes, String> {
    if resp.content_length().is_some_and(|n| n > limit as u64) {
        return Err(format!("answer larger than {limit} bytes"));
    }
    let mut buf = bytes::BytesMut::new();
    while let Some(chunk) = resp.chunk().await.map_err(describe)? {
        if buf.len() + chunk.len() > limit {
            return Err(format!("answer larger than {limit} bytes"));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

/// The run id in a `/log-id` answer: the real worker sends it as a JSON
/// string (worker README item 5); a bare id is accepted too, as upstream.
pub fn parse_log_id(body: &[u8]) -> Result<String, String> {
    let text = std::str::from_utf8(body).map_err(|e| format!("not UTF-8: {e}"))?;
    if let Ok(Value::String(id)) = serde_json::from_str::<Value>(text) {
        return Ok(id);
    }
    Ok(text.to_string())
}

/// `my_url / seg / seg…` as yarl builds it: segments appended after the
/// base path (a trailing slash is not doubled), each percent-encoded.
pub fn join(base: &str, segments: &[&str]) -> Result<url::Url, BackchannelError> {
    let mut url = url::Url::parse(base).map_err(|e| {
        BackchannelError::Unreachable(format!("invalid backchannel URL {base}: {e}"))
    })?;
    // Runs stored before assign checked the scheme may still carry another.
    check_scheme(&url).map_err(BackchannelError::Unreachable)?;
    url.set_query(None);
    url.set_fragment(None);
    {
        let mut path = url.path_segments_mut().map_err(|_| {
            BackchannelError::Unreachable(format!("invalid backchannel URL {base}"))
        })?;
        path.pop_if_empty();
        for s in segments {
            path.push(s);
        }
    }
    Ok(url)
}

/// One request; `Err` only when no response arrived.
async fn send(
    method: Method,
    url: url::Url,
    accept_json: bool,
    timeout: Duration,
) -> Result<reqwest::Response, String> {
    let mut req = client().request(method, url).timeout(timeout);
    if accept_json {
        req = req.header(header::ACCEPT, "application/json");
    }
    req.send().await.map_err(describe)
}

/// reqwest's error with its causes (the top level alone says little).
fn describe(e: reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

fn status_error(status: StatusCode, url: &url::Url) -> String {
    format!(
        "{}, message='{}', url='{}'",
        status.as_u16(),
        status.canonical_reason().unwrap_or(""),
        url
    )
}

/// List the log files of the run (`list_log_files`): the worker's JSON as is.
pub async fn list_log_files(bc: &Backchannel) -> Result<Value, BackchannelError> {
    match bc {
        Backchannel::None => Err(BackchannelError::NotSupported),
        Backchannel::Jenkins { .. } => Ok(Value::Array(vec![Value::String(JENKINS_LOG.into())])),
        Backchannel::Polling { my_url } => {
            let url = join(my_url, &["logs"])?;
            let resp = send(Method::GET, url.clone(), true, DEFAULT_TIMEOUT)
                .await
                .map_err(BackchannelError::Unreachable)?;
            let status = resp.status();
            if matches!(
                status,
                StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED
            ) {
                return Err(BackchannelError::Lacks(format!(
                    "the worker at {my_url} serves no log listing ({})",
                    status.as_u16()
                )));
            }
            if !status.is_success() {
                return Err(BackchannelError::Unreachable(status_error(status, &url)));
            }
            // aiohttp's `resp.json()` insists on a JSON content type.
            let ctype = resp
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string();
            let body = read_limited(resp, MAX_JSON_BODY)
                .await
                .map_err(BackchannelError::Unreachable)?;
            if !is_json_content_type(&ctype) {
                return Err(BackchannelError::Invalid(format!(
                    "unexpected content type {ctype:?} from {url}"
                )));
            }
            serde_json::from_slice(&body)
                .map_err(|e| BackchannelError::Invalid(format!("invalid JSON from {url}: {e}")))
        }
    }
}

fn is_json_content_type(ctype: &str) -> bool {
    let mime = ctype
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))
}

/// Fetch one log file (`get_log_file`): the peer's answer, whose body is
/// the log's bytes, unmodified, for the caller to stream on.
pub async fn get_log_file(
    bc: &Backchannel,
    name: &str,
) -> Result<reqwest::Response, BackchannelError> {
    let url = match bc {
        Backchannel::None => return Err(BackchannelError::NotSupported),
        Backchannel::Jenkins { my_url } => {
            if name != JENKINS_LOG {
                return Err(BackchannelError::NotFound(name.to_string()));
            }
            join(my_url, &["logText", "progressiveText"])?
        }
        Backchannel::Polling { my_url } => {
            // The URL library drops dot segments, so `..` would fetch the
            // listing (or escape /logs): no worker file has these names.
            if name.is_empty() || name == "." || name == ".." || name.contains('/') {
                return Err(BackchannelError::NotFound(name.to_string()));
            }
            join(my_url, &["logs", name])?
        }
    };
    let resp = send(Method::GET, url.clone(), false, DEFAULT_TIMEOUT)
        .await
        .map_err(BackchannelError::Unreachable)?;
    let status = resp.status();
    if matches!(bc, Backchannel::Polling { .. }) && status == StatusCode::NOT_FOUND {
        return Err(BackchannelError::NotFound(name.to_string()));
    }
    if !status.is_success() {
        return Err(BackchannelError::Unreachable(status_error(status, &url)));
    }
    Ok(resp)
}

/// Ask the worker to stop the run (`kill`).
pub async fn kill(bc: &Backchannel) -> Result<(), BackchannelError> {
    match bc {
        Backchannel::None | Backchannel::Jenkins { .. } => Err(BackchannelError::NotSupported),
        Backchannel::Polling { my_url } => {
            let url = join(my_url, &["kill"])?;
            let resp = send(Method::POST, url.clone(), true, DEFAULT_TIMEOUT)
                .await
                .map_err(BackchannelError::Unreachable)?;
            let status = resp.status();
            // The real worker has no kill route (worker README).
            if matches!(
                status,
                StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED
            ) {
                return Err(BackchannelError::Lacks(format!(
                    "the worker at {my_url} has no kill route ({})",
                    status.as_u16()
                )));
            }
            if !status.is_success() {
                return Err(BackchannelError::Unreachable(status_error(status, &url)));
            }
            Ok(())
        }
    }
}

/// Check that the worker is still on run `expected_log_id` (`ping`).
/// `Unreachable` is retryable, `Fatal` means the run will never report back.
pub async fn ping(bc: &Backchannel, expected_log_id: &str) -> Result<(), BackchannelError> {
    match bc {
        Backchannel::None => Err(BackchannelError::NotSupported),
        Backchannel::Polling { my_url } => {
            let failed = |e: String| {
                BackchannelError::Unreachable(format!("Failed to ping client {my_url}: {e}"))
            };
            let url = join(my_url, &["log-id"])?;
            let resp = send(Method::GET, url.clone(), false, PING_TIMEOUT)
                .await
                .map_err(failed)?;
            let status = resp.status();
            if !status.is_success() {
                return Err(failed(status_error(status, &url)));
            }
            let body = read_limited(resp, MAX_LOG_ID_BODY).await.map_err(failed)?;
            let log_id = parse_log_id(&body)
                .map_err(|e| BackchannelError::Invalid(format!("log id from {url} is {e}")))?;
            if log_id != expected_log_id {
                return Err(BackchannelError::Fatal(format!(
                    "Worker started processing new run {log_id} rather than {expected_log_id}"
                )));
            }
            Ok(())
        }
        Backchannel::Jenkins { my_url } => {
            let failed = |e: String| {
                BackchannelError::Unreachable(format!("Failed to ping client {my_url}: {e}"))
            };
            let url = join(my_url, &["api", "json"])?;
            let resp = send(Method::GET, url.clone(), false, PING_TIMEOUT)
                .await
                .map_err(failed)?;
            let status = resp.status();
            if status == StatusCode::NOT_FOUND {
                return Err(BackchannelError::Fatal(format!(
                    "Jenkins job {my_url} has disappeared"
                )));
            }
            if !status.is_success() {
                return Err(failed(status_error(status, &url)));
            }
            let body = read_limited(resp, MAX_JSON_BODY).await.map_err(failed)?;
            let job: Value = serde_json::from_slice(&body)
                .map_err(|e| BackchannelError::Invalid(format!("invalid JSON from {url}: {e}")))?;
            if job.get("result").and_then(Value::as_str) == Some("FAILURE") {
                let id = match job.get("id") {
                    Some(Value::String(s)) => s.clone(),
                    Some(Value::Number(n)) => n.to_string(),
                    _ => {
                        return Err(BackchannelError::Invalid(format!(
                            "Jenkins job at {url} has no id"
                        )))
                    }
                };
                return Err(BackchannelError::Fatal(format!(
                    "Jenkins lists job {id} for run {expected_log_id} as failed"
                )));
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests;
