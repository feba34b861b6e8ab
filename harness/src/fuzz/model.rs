//! The model of the runner's API the fuzzer draws sequences from: every
//! route, its app, its path and body templates, in one table. Adding a route
//! or a field is one edit of [`ROUTES`].
//!
//! A sequence starts from the inputs of a recorded golden (janitor.conf,
//! seed rows of codebases, queue items, candidates, runs and workers with
//! known passwords), then takes steps among every route: the route's example
//! body, kept valid or edited (a field replaced by a boundary or wrong-kind
//! value, removed, or an unknown key added), run ids taken from earlier
//! answers as `<uuid:N>` placeholders (FORMAT.md §3).

use crate::scenario::{Scenario, Step};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

/// Which app a route belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum App {
    Admin,
    /// The worker-facing app; requests carry a worker's Basic login.
    Public,
}

#[derive(Debug, Clone, Copy)]
pub enum Body {
    None,
    /// A JSON template: `"{codebase}"`, `"{campaign}"`, `"{run}"` are filled in.
    Json(&'static str),
    /// A finish upload: result.json and log files.
    Finish,
}

/// One route. In `path` and `query`, `{run}` is a run id (an earlier
/// answer's `<uuid:N>`, sometimes unknown), `{codebase}` and `{campaign}`
/// names from the seed (sometimes hostile), `{n}` a small number.
pub struct Route {
    pub name: &'static str,
    pub method: &'static str,
    pub app: App,
    pub path: &'static str,
    pub query: &'static [(&'static str, &'static str)],
    pub body: Body,
    /// Relative weight: routes that create state are drawn more often.
    pub weight: u32,
}

const fn route(
    name: &'static str,
    method: &'static str,
    app: App,
    path: &'static str,
    query: &'static [(&'static str, &'static str)],
    body: Body,
    weight: u32,
) -> Route {
    Route {
        name,
        method,
        app,
        path,
        query,
        body,
        weight,
    }
}

use App::{Admin, Public};

pub const ROUTES: &[Route] = &[
    route("health", "GET", Admin, "/health", &[], Body::None, 1),
    route("ready", "GET", Admin, "/ready", &[], Body::None, 1),
    route("status", "GET", Admin, "/status", &[], Body::None, 2),
    route(
        "active-runs",
        "GET",
        Admin,
        "/active-runs",
        &[],
        Body::None,
        2,
    ),
    route(
        "peek",
        "GET",
        Admin,
        "/active-runs/+peek",
        &[],
        Body::None,
        2,
    ),
    route(
        "active-run",
        "GET",
        Admin,
        "/active-runs/{run}",
        &[],
        Body::None,
        2,
    ),
    route(
        "queue",
        "GET",
        Admin,
        "/queue",
        &[("limit", "{n}")],
        Body::None,
        2,
    ),
    route(
        "queue-position",
        "GET",
        Admin,
        "/queue/position",
        &[("codebase", "{codebase}"), ("campaign", "{campaign}")],
        Body::None,
        1,
    ),
    route("codebases", "GET", Admin, "/codebases", &[], Body::None, 1),
    route(
        "candidates",
        "GET",
        Admin,
        "/candidates",
        &[],
        Body::None,
        1,
    ),
    route("run", "GET", Admin, "/runs/{run}", &[], Body::None, 2),
    route("log-index", "GET", Admin, "/log/{run}", &[], Body::None, 1),
    route("kill", "POST", Admin, "/kill/{run}", &[], Body::None, 1),
    route(
        "delete-candidate",
        "DELETE",
        Admin,
        "/candidates/{n}",
        &[],
        Body::None,
        1,
    ),
    route(
        "assign",
        "POST",
        Admin,
        "/active-runs",
        &[],
        Body::Json(
            r#"{"worker": "w1", "worker_link": "http://w1.example/", "codebase": "{codebase}", "campaign": "{campaign}"}"#,
        ),
        8,
    ),
    route(
        "finish",
        "POST",
        Admin,
        "/active-runs/{run}/finish",
        &[],
        Body::Finish,
        6,
    ),
    route(
        "upload-candidates",
        "POST",
        Admin,
        "/candidates",
        &[],
        Body::Json(
            r#"[{"codebase": "{codebase}", "campaign": "{campaign}", "command": "true", "value": 5, "success_chance": 0.5, "context": "x", "publish-policy": null, "change_set": null, "requester": "fuzz"}]"#,
        ),
        3,
    ),
    route(
        "upload-codebases",
        "POST",
        Admin,
        "/codebases",
        &[],
        Body::Json(
            r#"[{"name": "{codebase}", "url": "https://git.example.org/x", "branch": "main", "vcs_type": "git", "subpath": "", "value": 3, "web_url": "https://git.example.org/"}]"#,
        ),
        2,
    ),
    route(
        "schedule",
        "POST",
        Admin,
        "/schedule",
        &[],
        Body::Json(
            r#"{"codebase": "{codebase}", "campaign": "{campaign}", "requester": "fuzz", "refresh": false, "bucket": "default", "offset": 1.5, "estimated_duration": 5}"#,
        ),
        3,
    ),
    route(
        "schedule-control",
        "POST",
        Admin,
        "/schedule-control",
        &[],
        Body::Json(
            r#"{"run_id": "{run}", "requester": "fuzz", "refresh": false, "bucket": "control", "offset": 2}"#,
        ),
        2,
    ),
    route(
        "update-run",
        "POST",
        Admin,
        "/runs/{run}",
        &[],
        Body::Json(r#"{"publish_status": "approved"}"#),
        1,
    ),
    route("public-root", "GET", Public, "/", &[], Body::None, 1),
    route(
        "public-assign",
        "POST",
        Public,
        "/runner/active-runs",
        &[],
        Body::Json(
            r#"{"codebase": "{codebase}", "campaign": "{campaign}", "backchannel": null, "worker_link": null}"#,
        ),
        4,
    ),
    route(
        "public-active-run",
        "GET",
        Public,
        "/runner/active-runs/{run}",
        &[],
        Body::None,
        1,
    ),
    route(
        "public-finish",
        "POST",
        Public,
        "/runner/active-runs/{run}/finish",
        &[],
        Body::Finish,
        3,
    ),
];

/// The goldens whose inputs seed sequences: between them, every table the
/// runner reads has rows, and the three workers of FORMAT.md can log in.
pub const BASES: &[&str] = &[
    "finish-success",
    "queue-ordering",
    "queue-position",
    "public-assign-campaign-filter",
    "assign-priority-order",
    "runs-get-and-tweak",
    "schedule-from-run",
    "candidates-float-value",
];

/// Worker logins of the goldens (FORMAT.md §3), and one that is wrong.
const LOGINS: &[(&str, &str)] = &[
    ("worker-1", "s3cret"),
    ("builder-b", "hunter2"),
    ("w1", "pw1"),
    ("w1", "wrong"),
];

/// Boundary and wrong-kind values a field may be replaced with.
fn hostile(rng: &mut StdRng) -> Value {
    let pick = [
        json!(null),
        json!(""),
        json!("a\u{0}b"),
        json!("x".repeat(300)),
        json!("ünï©ødé ✓"),
        json!(0),
        json!(-1),
        json!(1.5),
        json!(-1.5),
        json!(2147483648i64),
        json!(9_007_199_254_740_993i64),
        json!(true),
        json!([]),
        json!({}),
        json!(["x"]),
    ];
    pick[rng.gen_range(0..pick.len())].clone()
}

/// What the seed provides to draw names from.
struct Facts {
    codebases: Vec<String>,
    campaigns: Vec<String>,
}

fn facts(base: &Scenario) -> Facts {
    let names = |table: &str, column: &str| -> Vec<String> {
        let mut v: Vec<String> = base
            .db_after
            .as_ref()
            .and_then(|d| d[table].as_array())
            .into_iter()
            .flatten()
            .filter_map(|row| row[column].as_str().map(str::to_string))
            .collect();
        v.sort();
        v.dedup();
        v
    };
    let mut codebases = names("codebase", "name");
    let mut campaigns = names("queue", "suite");
    campaigns.extend(names("candidate", "suite"));
    campaigns.sort();
    campaigns.dedup();
    if codebases.is_empty() {
        codebases.push("fin".into());
    }
    if campaigns.is_empty() {
        campaigns.push("lintian-fixes".into());
    }
    Facts {
        codebases,
        campaigns,
    }
}

/// The state of a sequence while it is drawn.
struct Draw {
    rng: StdRng,
    facts: Facts,
    /// Steps that may have produced a run id so far (assigns).
    assigns: usize,
}

impl Draw {
    fn run_id(&mut self) -> String {
        if self.assigns == 0 || self.rng.gen_bool(0.1) {
            // Unknown: a placeholder no answer produced becomes a fresh UUID.
            return format!("<uuid:{}>", self.assigns + 1 + self.rng.gen_range(0..3));
        }
        format!("<uuid:{}>", self.rng.gen_range(1..=self.assigns))
    }

    fn name(&mut self, of: fn(&Facts) -> &Vec<String>) -> String {
        if self.rng.gen_bool(0.1) {
            return match hostile(&mut self.rng) {
                Value::String(s) => s,
                other => other.to_string(),
            };
        }
        of(&self.facts)
            .choose(&mut self.rng)
            .cloned()
            .unwrap_or_default()
    }

    fn fill(&mut self, template: &str) -> String {
        let mut out = template.to_string();
        while let Some(i) = out.find("{run}") {
            let v = self.run_id();
            out.replace_range(i..i + 5, &v);
        }
        while let Some(i) = out.find("{codebase}") {
            let v = self.name(|f| &f.codebases);
            out.replace_range(i..i + 10, &v);
        }
        while let Some(i) = out.find("{campaign}") {
            let v = self.name(|f| &f.campaigns);
            out.replace_range(i..i + 10, &v);
        }
        while let Some(i) = out.find("{n}") {
            let v = self.rng.gen_range(0..6).to_string();
            out.replace_range(i..i + 3, &v);
        }
        out
    }

    /// A JSON template, filled and perhaps edited.
    fn json(&mut self, template: &str) -> Value {
        let mut v = fill_json(
            &serde_json::from_str(template).expect("model template"),
            self,
        );
        if self.rng.gen_bool(0.05) {
            return hostile(&mut self.rng);
        }
        for _ in 0..self.rng.gen_range(0..=2) {
            edit(&mut v, &mut self.rng);
        }
        v
    }

    fn step(&mut self) -> Step {
        let total: u32 = ROUTES.iter().map(|r| r.weight).sum();
        let mut pick = self.rng.gen_range(0..total);
        let route = ROUTES
            .iter()
            .find(|r| {
                if pick < r.weight {
                    true
                } else {
                    pick -= r.weight;
                    false
                }
            })
            .expect("a route");
        let mut request = serde_json::Map::new();
        request.insert("method".into(), json!(route.method));
        request.insert("path".into(), json!(self.fill(route.path)));
        if !route.query.is_empty() {
            let q: serde_json::Map<String, Value> = route
                .query
                .iter()
                .map(|(k, v)| (k.to_string(), json!(self.fill(v))))
                .collect();
            request.insert("query".into(), Value::Object(q));
        }
        if route.app == App::Public {
            request.insert("app".into(), json!("public"));
            let (user, pass) = LOGINS[self.rng.gen_range(0..LOGINS.len())];
            use base64::Engine;
            let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
            request.insert(
                "headers".into(),
                json!({"Authorization": format!("Basic {token}")}),
            );
        }
        match route.body {
            Body::None => {}
            Body::Json(t) => {
                request.insert("json".into(), self.json(t));
            }
            Body::Finish => {
                request.insert("multipart".into(), self.finish_parts());
            }
        }
        if route.name.contains("assign") {
            self.assigns += 1;
        }
        Step {
            request: Value::Object(request),
            response: None,
        }
    }

    fn finish_parts(&mut self) -> Value {
        let code = ["success", "nothing-to-do", "build-failed", "worker-failure"]
            [self.rng.gen_range(0..4)];
        let mut result = json!({
            "code": code,
            "description": "fuzzed",
            "start_time": "2020-02-02T10:00:00",
            "finish_time": "2020-02-02T10:10:30",
            "value": 10,
            "target": {"name": "generic", "details": {}},
        });
        for _ in 0..self.rng.gen_range(0..=2) {
            edit(&mut result, &mut self.rng);
        }
        let mut parts = vec![json!({
            "name": "result.json", "filename": "result.json",
            "content_type": "application/json", "json": result,
        })];
        for name in ["worker.log", "build.log"]
            .iter()
            .take(self.rng.gen_range(0..=2))
        {
            parts.push(json!({
                "name": name, "filename": name,
                "content_type": "text/plain", "text": format!("{name} says hi\n"),
            }));
        }
        Value::Array(parts)
    }
}

fn fill_json(v: &Value, d: &mut Draw) -> Value {
    match v {
        Value::String(s) => json!(d.fill(s)),
        Value::Array(a) => Value::Array(a.iter().map(|x| fill_json(x, d)).collect()),
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, x)| (k.clone(), fill_json(x, d)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// One edit of an object (or of the first object of an array): a field
/// replaced by a hostile value, removed, or an unknown key added.
fn edit(v: &mut Value, rng: &mut StdRng) {
    let obj = match v {
        Value::Object(m) => m,
        Value::Array(a) => match a.first_mut() {
            Some(Value::Object(m)) => m,
            _ => return,
        },
        _ => return,
    };
    let keys: Vec<String> = obj.keys().cloned().collect();
    match rng.gen_range(0..3) {
        0 if !keys.is_empty() => {
            let k = &keys[rng.gen_range(0..keys.len())];
            obj.insert(k.clone(), hostile(rng));
        }
        1 if !keys.is_empty() => {
            let k = &keys[rng.gen_range(0..keys.len())];
            obj.remove(k);
        }
        _ => {
            obj.insert("fuzz-extra".into(), hostile(rng));
        }
    }
}

/// Sequence `index` of the run seeded with `seed`: the same pair always
/// gives the same sequence.
pub fn sequence(bases: &[Scenario], seed: u64, index: usize, max_steps: usize) -> Scenario {
    let mut rng = StdRng::seed_from_u64(seed ^ (index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let base = &bases[rng.gen_range(0..bases.len())];
    let steps = rng.gen_range(1..=max_steps.max(1));
    let mut d = Draw {
        rng,
        facts: facts(base),
        assigns: 0,
    };
    let steps: Vec<Step> = (0..steps).map(|_| d.step()).collect();
    Scenario {
        name: format!("fuzz-{seed}-{index}"),
        description: format!("generated by janitor-harness fuzz (seed {seed}, sequence {index}) from the inputs of {}", base.name),
        source: None,
        notes: None,
        config: base.config.clone(),
        runner: base.runner.clone(),
        seed_sql: base.seed_sql.clone(),
        seed_redis: base.seed_redis.clone(),
        steps,
        db_after: None,
        redis_after: None,
        files_after: None,
        fake_worker_requests: None,
    }
}

/// The route a recorded step was drawn from (for difference signatures).
pub fn route_of(step: &Step) -> String {
    let method = step.method();
    let path = step.path();
    let segs: Vec<&str> = path.split('/').collect();
    for r in ROUTES {
        let rs: Vec<&str> = r.path.split('/').collect();
        if r.method == method
            && rs.len() == segs.len()
            && rs
                .iter()
                .zip(&segs)
                .all(|(t, s)| t.starts_with('{') || t == s)
        {
            return format!("{} {}", r.method, r.path);
        }
    }
    format!("{method} {path}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bases() -> Vec<Scenario> {
        BASES
            .iter()
            .map(|n| Scenario::load(&crate::golden_dir().join(format!("{n}.json"))).unwrap())
            .collect()
    }

    #[test]
    fn sequences_are_deterministic_and_varied() {
        let b = bases();
        let a = serde_json::to_value(sequence(&b, 7, 3, 8)).unwrap();
        assert_eq!(a, serde_json::to_value(sequence(&b, 7, 3, 8)).unwrap());
        let names: std::collections::BTreeSet<String> = (0..50)
            .flat_map(|i| sequence(&b, 7, i, 8).steps)
            .map(|s| route_of(&s))
            .collect();
        // Every route is drawn within 50 sequences.
        assert_eq!(names.len(), ROUTES.len(), "{names:?}");
    }
}
