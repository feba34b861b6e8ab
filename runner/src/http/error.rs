//! The one error type of the HTTP boundary and its mapping to responses,
//! including the framework pages aiohttp produces (404/405/500 text bodies).

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

pub const TEXT_PLAIN: &str = "text/plain; charset=utf-8";
pub const APPLICATION_JSON: &str = "application/json; charset=utf-8";

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A plain-text answer with the given status (aiohttp `HTTPException(text=...)`).
    #[error("{status}: {text}")]
    Text { status: StatusCode, text: String },
    /// A JSON `{"reason": ...}` answer: how the runner reports bad input (rule book §2).
    #[error("{status}: {reason}")]
    Reason { status: StatusCode, reason: String },
    /// No valid worker login: upstream's 401 with its Basic challenge,
    /// whatever was wrong with the credentials.
    #[error("worker login required")]
    LoginRequired,
    /// Anything unexpected: logged, answered with aiohttp's 500 page.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<crate::auth::AuthError> for ApiError {
    fn from(e: crate::auth::AuthError) -> Self {
        match e {
            // The database failing is not the worker's fault (503 or 500).
            crate::auth::AuthError::Db(e) => e.into(),
            _ => ApiError::LoginRequired,
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        ApiError::Internal(e.into())
    }
}

impl From<crate::state::StateError> for ApiError {
    fn from(e: crate::state::StateError) -> Self {
        ApiError::Internal(e.into())
    }
}

impl From<redis::RedisError> for ApiError {
    fn from(e: redis::RedisError) -> Self {
        ApiError::Internal(e.into())
    }
}

impl ApiError {
    pub fn bad_request(reason: impl Into<String>) -> Self {
        ApiError::Reason {
            status: StatusCode::BAD_REQUEST,
            reason: reason.into(),
        }
    }

    pub fn not_found_text(text: impl Into<String>) -> Self {
        ApiError::Text {
            status: StatusCode::NOT_FOUND,
            text: text.into(),
        }
    }
}

pub fn text_response(status: StatusCode, text: impl Into<String>) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, HeaderValue::from_static(TEXT_PLAIN))],
        text.into(),
    )
        .into_response()
}

/// JSON serialised the way Python's `json.dumps` writes it.
pub fn json_response<T: serde::Serialize + ?Sized>(status: StatusCode, body: &T) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(APPLICATION_JSON),
        )],
        crate::py::json::to_vec(body),
    )
        .into_response()
}

pub fn reason_response(status: StatusCode, reason: &str) -> Response {
    json_response(status, &serde_json::json!({ "reason": reason }))
}

pub fn not_found_page() -> Response {
    text_response(StatusCode::NOT_FOUND, "404: Not Found")
}

pub fn internal_error_page() -> Response {
    text_response(
        StatusCode::INTERNAL_SERVER_ERROR,
        "500 Internal Server Error\n\nServer got itself in trouble",
    )
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            ApiError::Text { status, text } => text_response(status, text),
            ApiError::Reason { status, reason } => reason_response(status, &reason),
            ApiError::LoginRequired => {
                let mut resp = text_response(StatusCode::UNAUTHORIZED, "worker login required");
                resp.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Basic Realm=\"Janitor\""),
                );
                resp
            }
            ApiError::Internal(err) => match crate::dependency::unavailable(&err) {
                // Not the request's fault and worth retrying (the worker
                // retries 5xx): a clear 503, not the 500 page.
                Some(reason) => {
                    tracing::warn!(%reason, "request failed: a dependency is unavailable");
                    reason_response(StatusCode::SERVICE_UNAVAILABLE, &reason)
                }
                None => {
                    tracing::error!(error = ?err, "request failed");
                    internal_error_page()
                }
            },
        }
    }
}

/// Framework-level answers: axum's bare 405 (it sets `Allow` but no body)
/// becomes aiohttp's text page.
pub async fn framework_pages(response: Response) -> Response {
    if response.status() == StatusCode::METHOD_NOT_ALLOWED
        && !response.headers().contains_key(header::CONTENT_TYPE)
    {
        let allow = response.headers().get(header::ALLOW).cloned();
        let mut page = text_response(StatusCode::METHOD_NOT_ALLOWED, "405: Method Not Allowed");
        if let Some(allow) = allow {
            page.headers_mut().insert(header::ALLOW, allow);
        }
        return page;
    }
    response
}
