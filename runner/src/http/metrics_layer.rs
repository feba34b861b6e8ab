//! The metrics middleware of both apps (runner-http-api.md §0.3), the
//! outermost layer as upstream's `metrics_middleware`: requests in progress,
//! latency, and per-status counts, labelled with the route *name*.

use super::AppState;
use crate::metrics::{Metrics, NONE_LABEL};
use axum::extract::{MatchedPath, Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use prometheus::GaugeVec;
use std::time::Instant;

/// Route names of both apps' route tables (§2 and §3), keyed by method and
/// matched path pattern. Upstream names a route per (method, path); GET
/// routes also answer HEAD under the same name.
const ROUTE_NAMES: &[(&str, &str, &str)] = &[
    ("GET", "/health", "health"),
    ("GET", "/ready", "ready"),
    ("GET", "/metrics", "metrics"),
    ("GET", "/status", "status"),
    ("GET", "/active-runs", "get-active-runs"),
    ("POST", "/active-runs", "assign"),
    ("GET", "/active-runs/+peek", "peek"),
    ("GET", "/active-runs/{run_id}", "get-active-run"),
    ("POST", "/active-runs/{run_id}/finish", "finish"),
    ("GET", "/log/{run_id}", "log-index"),
    ("GET", "/log/{run_id}/{filename}", "log"),
    ("POST", "/kill/{run_id}", "kill"),
    ("GET", "/queue", "queue"),
    ("GET", "/queue/position", "queue-position"),
    ("POST", "/schedule", "schedule"),
    ("POST", "/schedule-control", "schedule-control"),
    ("GET", "/runs/{run_id}", "get-run"),
    ("POST", "/runs/{run_id}", "update-run"),
    ("GET", "/codebases", "download-codebases"),
    ("POST", "/codebases", "upload-codebases"),
    ("GET", "/candidates", "download-candidates"),
    ("POST", "/candidates", "upload-candidates"),
    ("DELETE", "/candidates/{id}", "delete-candidate"),
    // Public app: upstream names only the GET; assign and finish are named
    // here too, so worker latency can be told apart (issue 17, no golden
    // reads these labels).
    ("GET", "/runner/active-runs/{run_id}", "get-active-run"),
    ("POST", "/runner/active-runs", "assign"),
    ("POST", "/runner/active-runs/{run_id}/finish", "finish"),
];

/// The `route` label: the route's name, `None` for unnamed routes, unmatched
/// paths and methods the path does not serve (aiohttp's system routes).
pub fn route_name(method: &Method, matched_path: Option<&str>) -> &'static str {
    let Some(path) = matched_path else {
        return NONE_LABEL;
    };
    let method = if method == Method::HEAD {
        "GET"
    } else {
        method.as_str()
    };
    ROUTE_NAMES
        .iter()
        .find(|(m, p, _)| *m == method && *p == path)
        .map_or(NONE_LABEL, |(_, _, name)| name)
}

/// Decrements the in-progress gauge however the request ends (including a
/// dropped connection, when the future is cancelled).
struct InProgress<'a> {
    gauge: &'a GaugeVec,
    labels: [&'a str; 2],
}

impl Drop for InProgress<'_> {
    fn drop(&mut self) {
        self.gauge.with_label_values(&self.labels).dec();
    }
}

/// The middleware: `.layer(from_fn_with_state(state.clone(), track))`.
pub async fn track(State(app): State<AppState>, req: Request, next: Next) -> Response {
    observe(&app.metrics, req, next).await
}

async fn observe(m: &Metrics, req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let route = route_name(
        &method,
        req.extensions()
            .get::<MatchedPath>()
            .map(MatchedPath::as_str),
    );
    m.requests_in_progress
        .with_label_values(&[method.as_str(), route])
        .inc();
    let guard = InProgress {
        gauge: &m.requests_in_progress,
        labels: [method.as_str(), route],
    };
    let start = Instant::now();
    let response = next.run(req).await;
    m.request_latency
        .with_label_values(&[route])
        .observe(start.elapsed().as_secs_f64());
    drop(guard);
    // A 500 is an uncaught exception upstream: counted as such, not as a response.
    if response.status() == StatusCode::INTERNAL_SERVER_ERROR {
        m.request_exceptions
            .with_label_values(&[method.as_str(), route])
            .inc();
    } else {
        m.requests
            .with_label_values(&[method.as_str(), route, response.status().as_str()])
            .inc();
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::routing::get;
    use axum::Router;
    use std::sync::Arc;
    use tower::ServiceExt;

    async fn send(router: &Router, method: Method, uri: &str) -> StatusCode {
        let req = axum::http::Request::builder()
            .method(method)
            .uri(uri)
            .body(Body::empty())
            .unwrap();
        router.clone().oneshot(req).await.unwrap().status()
    }

    #[tokio::test]
    async fn middleware_counts_by_route_name() {
        let metrics = Arc::new(Metrics::new());
        let m = metrics.clone();
        let router = Router::new()
            .route("/log/{run_id}", get(|| async { "ok" }))
            .route(
                "/kill/{run_id}",
                axum::routing::post(|| async { StatusCode::INTERNAL_SERVER_ERROR }),
            )
            .fallback(|| async { StatusCode::NOT_FOUND })
            .layer(axum::middleware::from_fn(move |req, next| {
                let m = m.clone();
                async move { observe(&m, req, next).await }
            }));
        assert_eq!(send(&router, Method::GET, "/log/a").await, StatusCode::OK);
        assert_eq!(send(&router, Method::GET, "/log/b").await, StatusCode::OK);
        assert_eq!(
            send(&router, Method::GET, "/nowhere").await,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            send(&router, Method::POST, "/log/a").await,
            StatusCode::METHOD_NOT_ALLOWED
        );
        assert_eq!(
            send(&router, Method::POST, "/kill/a").await,
            StatusCode::INTERNAL_SERVER_ERROR
        );
        let text = String::from_utf8(metrics.render()).unwrap();
        for line in [
            r#"requests_total{method="GET",route="log-index",status="200"} 2"#,
            r#"requests_total{method="GET",route="None",status="404"} 1"#,
            r#"requests_total{method="POST",route="None",status="405"} 1"#,
            r#"request_exceptions_total{method="POST",route="kill"} 1"#,
            r#"request_latency_seconds_count{route="log-index"} 2"#,
            r#"requests_in_progress_total{method="GET",route="log-index"} 0"#,
        ] {
            assert!(text.contains(line), "missing {line} in\n{text}");
        }
        assert!(
            !text.contains(r#"requests_total{method="POST",route="kill""#),
            "{text}"
        );
    }

    #[test]
    fn route_names_follow_the_route_tables() {
        assert_eq!(
            route_name(&Method::GET, Some("/active-runs")),
            "get-active-runs"
        );
        assert_eq!(route_name(&Method::POST, Some("/active-runs")), "assign");
        assert_eq!(
            route_name(&Method::HEAD, Some("/log/{run_id}")),
            "log-index"
        );
        assert_eq!(
            route_name(&Method::DELETE, Some("/candidates/{id}")),
            "delete-candidate"
        );
        assert_eq!(
            route_name(&Method::GET, Some("/runner/active-runs/{run_id}")),
            "get-active-run"
        );
        assert_eq!(
            route_name(&Method::POST, Some("/runner/active-runs")),
            "assign"
        );
        assert_eq!(
            route_name(&Method::POST, Some("/runner/active-runs/{run_id}/finish")),
            "finish"
        );
        // Wrong methods and unmatched paths.
        assert_eq!(route_name(&Method::DELETE, Some("/active-runs")), "None");
        assert_eq!(route_name(&Method::GET, None), "None");
    }
}
