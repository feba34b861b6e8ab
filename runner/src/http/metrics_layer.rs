//! The metrics middleware of both apps (runner-http-api.md §0.3), the
//! outermost layer as upstream's `metrics_middleware`: requests in progress,
//! latency, and per-status counts, labelled with the route *name*.

use super::AppState;
use crate::metrics::{Metrics, NONE_LABEL};
use axum::extract::{MatchedPath, Request, State};
use axum::handler::Handler;
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::{MethodFilter, MethodRouter};
use axum::Router;
use prometheus::GaugeVec;
use std::sync::Arc;
use std::time::Instant;

/// The metric name of every (method, path) of an app, recorded where each
/// route is registered ([`Routes`]): upstream names a route per (method,
/// path); GET routes also answer HEAD under the same name.
#[derive(Debug, Clone, Default)]
pub struct RouteNames(Arc<Vec<(Method, &'static str, &'static str)>>);

impl RouteNames {
    /// The `route` label: the route's name, `None` for unnamed routes,
    /// unmatched paths and methods the path does not serve (aiohttp's
    /// system routes).
    pub fn name(&self, method: &Method, matched_path: Option<&str>) -> &'static str {
        let Some(path) = matched_path else {
            return NONE_LABEL;
        };
        let method = if method == Method::HEAD {
            &Method::GET
        } else {
            method
        };
        self.0
            .iter()
            .find(|(m, p, _)| m == method && *p == path)
            .map_or(NONE_LABEL, |(_, _, name)| name)
    }
}

/// An app's route table, each route declared once with its metric name:
/// `Routes::new().at("/active-runs").get("get-active-runs", list).post("assign", assign)`.
pub struct Routes {
    router: Router<AppState>,
    names: Vec<(Method, &'static str, &'static str)>,
    current: Option<(&'static str, MethodRouter<AppState>)>,
}

impl Default for Routes {
    fn default() -> Self {
        Self::new()
    }
}

impl Routes {
    pub fn new() -> Self {
        Routes {
            router: Router::new(),
            names: Vec::new(),
            current: None,
        }
    }

    /// Start the routes of `path`.
    pub fn at(mut self, path: &'static str) -> Self {
        self.flush();
        self.current = Some((path, MethodRouter::new()));
        self
    }

    pub fn get<H: Handler<T, AppState>, T: 'static>(self, name: &'static str, h: H) -> Self {
        self.on(Method::GET, MethodFilter::GET, name, h)
    }

    pub fn post<H: Handler<T, AppState>, T: 'static>(self, name: &'static str, h: H) -> Self {
        self.on(Method::POST, MethodFilter::POST, name, h)
    }

    pub fn delete<H: Handler<T, AppState>, T: 'static>(self, name: &'static str, h: H) -> Self {
        self.on(Method::DELETE, MethodFilter::DELETE, name, h)
    }

    fn on<H: Handler<T, AppState>, T: 'static>(
        mut self,
        method: Method,
        filter: MethodFilter,
        name: &'static str,
        h: H,
    ) -> Self {
        let (path, methods) = self.current.take().expect("Routes::at before a method");
        self.current = Some((path, methods.on(filter, h)));
        self.names.push((method, path, name));
        self
    }

    fn flush(&mut self) {
        if let Some((path, methods)) = self.current.take() {
            self.router = std::mem::take(&mut self.router).route(path, methods);
        }
    }

    /// The router and the names of its routes.
    pub fn finish(mut self) -> (Router<AppState>, RouteNames) {
        self.flush();
        (self.router, RouteNames(Arc::new(self.names)))
    }
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

/// The middleware: `.layer(from_fn_with_state((state, names), track))`.
pub async fn track(
    State((app, names)): State<(AppState, RouteNames)>,
    req: Request,
    next: Next,
) -> Response {
    observe(&app.metrics, &names, req, next).await
}

async fn observe(m: &Metrics, names: &RouteNames, req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let route = names.name(
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
        let (_, names) = Routes::new()
            .at("/log/{run_id}")
            .get("log-index", || async { "ok" })
            .at("/kill/{run_id}")
            .post("kill", || async { StatusCode::INTERNAL_SERVER_ERROR })
            .finish();
        let router: Router = Router::new()
            .route("/log/{run_id}", get(|| async { "ok" }))
            .route(
                "/kill/{run_id}",
                axum::routing::post(|| async { StatusCode::INTERNAL_SERVER_ERROR }),
            )
            .fallback(|| async { StatusCode::NOT_FOUND })
            .layer(axum::middleware::from_fn(move |req, next| {
                let (m, names) = (m.clone(), names.clone());
                async move { observe(&m, &names, req, next).await }
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

    /// The names the apps register are upstream's (runner-http-api.md §2-3).
    #[test]
    fn both_apps_name_their_routes_as_upstream() {
        let admin = crate::http::admin::routes().finish().1;
        let public = crate::http::public::routes().finish().1;
        for (method, path, name) in [
            (Method::GET, "/health", "health"),
            (Method::GET, "/ready", "ready"),
            (Method::GET, "/metrics", "metrics"),
            (Method::GET, "/status", "status"),
            (Method::GET, "/active-runs", "get-active-runs"),
            (Method::POST, "/active-runs", "assign"),
            (Method::GET, "/active-runs/+peek", "peek"),
            (Method::GET, "/active-runs/{run_id}", "get-active-run"),
            (Method::POST, "/active-runs/{run_id}/finish", "finish"),
            (Method::GET, "/log/{run_id}", "log-index"),
            (Method::HEAD, "/log/{run_id}", "log-index"),
            (Method::GET, "/log/{run_id}/{filename}", "log"),
            (Method::POST, "/kill/{run_id}", "kill"),
            (Method::GET, "/queue", "queue"),
            (Method::GET, "/queue/position", "queue-position"),
            (Method::POST, "/schedule", "schedule"),
            (Method::POST, "/schedule-control", "schedule-control"),
            (Method::GET, "/runs/{run_id}", "get-run"),
            (Method::POST, "/runs/{run_id}", "update-run"),
            (Method::GET, "/codebases", "download-codebases"),
            (Method::POST, "/codebases", "upload-codebases"),
            (Method::GET, "/candidates", "download-candidates"),
            (Method::POST, "/candidates", "upload-candidates"),
            (Method::DELETE, "/candidates/{id}", "delete-candidate"),
        ] {
            assert_eq!(admin.name(&method, Some(path)), name, "{method} {path}");
        }
        // Public app: upstream names only the GET; assign and finish are
        // named here too, so worker latency can be told apart (issue 17).
        for (method, path, name) in [
            (
                Method::GET,
                "/runner/active-runs/{run_id}",
                "get-active-run",
            ),
            (Method::POST, "/runner/active-runs", "assign"),
            (
                Method::POST,
                "/runner/active-runs/{run_id}/finish",
                "finish",
            ),
            (Method::GET, "/", "None"),
        ] {
            assert_eq!(public.name(&method, Some(path)), name, "{method} {path}");
        }
        // Wrong methods and unmatched paths.
        assert_eq!(admin.name(&Method::DELETE, Some("/active-runs")), "None");
        assert_eq!(admin.name(&Method::GET, None), "None");
    }
}
