//! GET /queue and GET /queue/position (runner-http-api.md §2.13–§2.14).

use super::fields::{query_pairs, query_param};
use crate::db;
use crate::db::interval::{to_timedelta, total_seconds};
use crate::http::error::json_response;
use crate::http::{ApiError, AppState};
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::TimeDelta;

#[derive(serde::Serialize)]
struct Entry {
    queue_id: i32,
    codebase: String,
    campaign: String,
    context: Option<String>,
    command: Option<String>,
}

/// The queue in scheduling order; `?limit=N` (0: all). Upstream always
/// answers 500 here (QH-10); this is the intended behaviour.
pub async fn list(
    State(app): State<AppState>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let pairs = query_pairs(q.as_deref());
    let limit = match pairs.iter().find(|(k, _)| k == "limit") {
        None => None,
        Some((_, v)) => match v.trim().parse::<i64>() {
            Ok(n) if n >= 0 => Some(n),
            _ => return Err(ApiError::bad_request(format!("invalid limit {v:?}"))),
        },
    };
    let mut conn = app.db.acquire().await?;
    let entries: Vec<Entry> = db::queue::list(&mut conn, limit)
        .await?
        .into_iter()
        .map(|e| Entry {
            queue_id: e.id,
            codebase: e.codebase,
            campaign: e.campaign,
            context: e.context,
            command: e.command,
        })
        .collect();
    Ok(json_response(StatusCode::OK, &entries))
}

#[derive(serde::Serialize)]
struct Position {
    position: Option<i64>,
    wait_time: Option<f64>,
    cumulative_wait_time: Option<f64>,
}

/// `timedelta / n`: microseconds rounded half to even.
fn divide(td: TimeDelta, n: i64) -> TimeDelta {
    let us = td.num_microseconds().unwrap_or(i64::MAX);
    let (q, r) = (us.div_euclid(n), us.rem_euclid(n));
    let up = 2 * r > n || (2 * r == n && q % 2 != 0);
    TimeDelta::microseconds(if up { q + 1 } else { q })
}

/// Position and expected wait of (codebase, campaign). The wait is divided
/// by the number of active runs; with none, upstream divides by zero (500,
/// QH-11) and we answer as if one run were active.
pub async fn position(
    State(app): State<AppState>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let pairs = query_pairs(q.as_deref());
    let codebase = query_param(&pairs, "codebase")?;
    let campaign = query_param(&pairs, "campaign")?;
    let mut conn = app.db.acquire().await?;
    let (position, wait) = db::queue::position(&mut conn, codebase, campaign)
        .await?
        .unwrap_or((None, None));
    drop(conn);
    let active = crate::state::active_run_count(&app.runs).await? as i64;
    let wait = wait.as_ref().map(to_timedelta);
    let body = Position {
        position,
        wait_time: wait.map(|w| total_seconds(divide(w, active.max(1)))),
        cumulative_wait_time: wait.map(total_seconds),
    };
    Ok(json_response(StatusCode::OK, &body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn division_rounds_half_to_even_like_timedelta() {
        assert_eq!(
            divide(TimeDelta::microseconds(5), 2),
            TimeDelta::microseconds(2)
        );
        assert_eq!(
            divide(TimeDelta::microseconds(7), 2),
            TimeDelta::microseconds(4)
        );
        assert_eq!(divide(TimeDelta::seconds(510), 1), TimeDelta::seconds(510));
        assert_eq!(
            divide(TimeDelta::microseconds(10), 3),
            TimeDelta::microseconds(3)
        );
    }
}
