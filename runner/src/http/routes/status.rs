//! GET /status (runner-http-api.md §2.4).

use crate::http::error::json_response;
use crate::http::{ApiError, AppState};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;

pub async fn status(State(app): State<AppState>) -> Result<Response, ApiError> {
    let doc = crate::state::status_document(&app.runs)
        .await
        .map_err(anyhow::Error::from)?;
    Ok(json_response(StatusCode::OK, &doc))
}
