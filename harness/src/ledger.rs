//! The divergence ledger (`golden/divergences.toml`) and the pending ratchet
//! (`golden/pending.toml`).
//!
//! A ledger entry is keyed by behaviour — the request (method, route pattern,
//! app, optional body condition) and what the golden shows there — never by
//! file, so later recordings of the same behaviour are recognised. It names
//! the paths allowed to differ and what we answer instead (checked). It is
//! strict: wherever an entry applies, the difference must still be there.

use crate::compare::Difference;
use crate::scenario::Scenario;
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::Path;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Divergence {
    pub id: String,
    pub method: String,
    /// Route pattern, `{name}` matching one path segment.
    pub route: String,
    /// `admin` or `public`; absent: either app.
    #[serde(default)]
    pub app: Option<String>,
    /// Request JSON keys that must be present with a non-null, non-empty value.
    #[serde(default)]
    pub body_has: Vec<String>,
    /// Conditions on the request JSON body (path relative to the body). For
    /// a multipart request the body is the JSON of its `result.json` part.
    /// A path starting with `request.` reads the whole recorded request
    /// instead (`request.headers.Authorization`, `request.multipart[1].filename`).
    #[serde(default)]
    pub request_when: Vec<Check>,
    /// The entry does not apply when any of these holds (same paths as
    /// `request_when`): how an entry excludes a neighbouring cause.
    #[serde(default)]
    pub request_unless: Vec<Check>,
    /// Conditions on the JSON body of the earlier step whose answer created
    /// the run this step's path names (its assign): how an entry tells apart
    /// runs assigned with and without a backchannel. No such step: no match.
    #[serde(default)]
    pub assigned_when: Vec<Check>,
    /// Who makes the request, relative to the scenario: `unregistered` (the
    /// worker named by the request, or by the assign that created the run,
    /// is inserted by no seed statement), `not-the-runs` (the Basic login of
    /// a finish is not the login that was assigned the run).
    #[serde(default)]
    pub worker: Option<String>,
    /// The entry applies only if an earlier step of the scenario sent the
    /// same method and path and was answered with this status (a retry).
    #[serde(default)]
    pub retry_of: Option<u16>,
    /// The status the golden recorded.
    pub golden_status: u16,
    /// Further conditions on the golden response.
    #[serde(default)]
    pub when: Vec<Check>,
    /// Paths allowed to differ: `response…` (relative to the matching step) or
    /// document paths (`db_after.run`, `redis_after.keys`, `files_after`, …).
    #[serde(default)]
    pub differs: Vec<String>,
    /// Document paths (e.g. `db_after.codebase`, `steps[2].response.json`)
    /// where our list must hold every element of the golden's list and may
    /// hold more: a narrower promise than `differs` for "we keep more rows".
    #[serde(default)]
    pub superset: Vec<String>,
    /// What we answer instead, checked on our response at every matching step.
    #[serde(default)]
    pub expect: Vec<Check>,
    pub reason: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Check {
    pub path: String,
    #[serde(default)]
    pub equals: Option<toml::Value>,
    /// `null`, `string`, `number`, `bool`, `array`, `object`, `present`,
    /// `absent`, `empty` (an empty list, object or string), or `has-nul` (a
    /// NUL character in any string inside, Basic credentials decoded).
    #[serde(default)]
    pub is: Option<String>,
    /// A regular expression the value (a string) must match.
    #[serde(default)]
    pub matches: Option<String>,
}

/// Does `v` carry a NUL character anywhere? A `Basic …` value is decoded
/// first, since credentials travel base64-encoded.
fn has_nul(v: &Value) -> bool {
    use base64::Engine;
    match v {
        Value::String(s) => {
            s.contains('\0')
                || s.strip_prefix("Basic ").is_some_and(|b| {
                    base64::engine::general_purpose::STANDARD
                        .decode(b.trim())
                        .is_ok_and(|raw| raw.contains(&0))
                })
        }
        Value::Array(items) => items.iter().any(has_nul),
        Value::Object(m) => m.iter().any(|(k, x)| k.contains('\0') || has_nul(x)),
        _ => false,
    }
}

impl Check {
    pub fn holds(&self, root: &Value) -> bool {
        let found = lookup(root, &self.path);
        if let Some(kind) = &self.is {
            let ok = match (kind.as_str(), found) {
                ("absent", f) => f.is_none(),
                ("present", f) => f.is_some(),
                (_, None) => false,
                ("null", Some(v)) => v.is_null(),
                ("string", Some(v)) => v.is_string(),
                ("number", Some(v)) => v.is_number(),
                ("bool", Some(v)) => v.is_boolean(),
                ("array", Some(v)) => v.is_array(),
                ("object", Some(v)) => v.is_object(),
                ("empty", Some(v)) => match v {
                    Value::Array(a) => a.is_empty(),
                    Value::Object(m) => m.is_empty(),
                    Value::String(s) => s.is_empty(),
                    _ => false,
                },
                ("has-nul", Some(v)) => has_nul(v),
                _ => false,
            };
            if !ok {
                return false;
            }
        }
        if let Some(pattern) = &self.matches {
            let ok = match (found, regex::Regex::new(pattern)) {
                (Some(Value::String(s)), Ok(re)) => re.is_match(s),
                _ => false,
            };
            if !ok {
                return false;
            }
        }
        if let Some(expected) = &self.equals {
            let expected = serde_json::to_value(expected).unwrap_or(Value::Null);
            return found == Some(&expected);
        }
        true
    }
}

impl std::fmt::Display for Check {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.path)?;
        if let Some(k) = &self.is {
            write!(f, " is {k}")?;
        }
        if let Some(e) = &self.equals {
            write!(f, " equals {e}")?;
        }
        if let Some(m) = &self.matches {
            write!(f, " matches /{m}/")?;
        }
        Ok(())
    }
}

/// `a.b[2].c` inside a JSON value.
pub fn lookup<'a>(root: &'a Value, path: &str) -> Option<&'a Value> {
    let mut cur = root;
    for part in path.split('.').filter(|p| !p.is_empty()) {
        let (key, indices) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if !key.is_empty() {
            cur = cur.get(key)?;
        }
        for idx in indices.split('[').filter(|s| !s.is_empty()) {
            let n: usize = idx.trim_end_matches(']').parse().ok()?;
            cur = cur.get(n)?;
        }
    }
    Some(cur)
}

/// The JSON a request carries: its `json` body, or for a multipart upload
/// the `json` payload of the part whose filename is `result.json`.
fn request_body(request: &Value) -> &Value {
    if let Some(parts) = request.get("multipart").and_then(Value::as_array) {
        if let Some(part) = parts
            .iter()
            .rev()
            .find(|p| p["filename"].as_str() == Some("result.json"))
        {
            return &part["json"];
        }
    }
    &request["json"]
}

const GONE: &str = "nothing extra: the difference is gone";

/// Every element of the golden list is in ours (as a multiset), and ours has more.
fn superset_holds(golden: Option<&Value>, ours: Option<&Value>) -> Result<(), String> {
    let (Some(Value::Array(g)), Some(Value::Array(o))) = (golden, ours) else {
        return Err("both sides must be lists".into());
    };
    let mut rest: Vec<&Value> = o.iter().collect();
    for item in g {
        match rest.iter().position(|x| *x == item) {
            Some(i) => {
                rest.remove(i);
            }
            None => {
                return Err(format!(
                    "missing {}",
                    serde_json::to_string(item).unwrap_or_default()
                ))
            }
        }
    }
    if rest.is_empty() {
        return Err(GONE.into());
    }
    Ok(())
}

pub fn route_matches(pattern: &str, path: &str) -> bool {
    let p: Vec<&str> = pattern.split('/').collect();
    let s: Vec<&str> = path.split('/').collect();
    p.len() == s.len()
        && p.iter().zip(&s).all(|(p, s)| {
            if p.starts_with('{') && p.ends_with('}') {
                !s.is_empty()
            } else {
                p == s
            }
        })
}

impl Divergence {
    /// Does this entry describe step `step` of `scenario` (golden side only)?
    pub fn applies(&self, scenario: &Scenario, step: usize) -> bool {
        let Some(s) = scenario.steps.get(step) else {
            return false;
        };
        let Some(resp) = &s.response else {
            return false;
        };
        let app = if s.is_public() { "public" } else { "admin" };
        let method_ok = self.method == "*" || s.method().eq_ignore_ascii_case(&self.method);
        if !method_ok || !(self.route == "*" || route_matches(&self.route, s.path())) {
            return false;
        }
        if self.app.as_deref().is_some_and(|a| a != app) {
            return false;
        }
        if resp["status"].as_u64() != Some(self.golden_status as u64) {
            return false;
        }
        let body = request_body(&s.request);
        let has = |k: &String| match body.get(k) {
            None | Some(Value::Null) => false,
            Some(Value::String(x)) => !x.is_empty(),
            Some(_) => true,
        };
        let holds = |c: &Check| match c.path.strip_prefix("request") {
            Some(rest) if rest.is_empty() || rest.starts_with('.') => {
                let mut c = c.clone();
                c.path = rest.trim_start_matches('.').to_string();
                c.holds(&s.request)
            }
            _ => c.holds(body),
        };
        self.body_has.iter().all(has)
            && self.request_when.iter().all(holds)
            && !self.request_unless.iter().any(holds)
            && self.when.iter().all(|c| c.holds(resp))
            && self.worker_condition_holds(scenario, step)
            && (self.assigned_when.is_empty()
                || assigning_step(scenario, step).is_some_and(|i| {
                    let body = request_body(&scenario.steps[i].request);
                    self.assigned_when.iter().all(|c| c.holds(body))
                }))
            && self.retry_of.is_none_or(|status| {
                scenario.steps[..step].iter().any(|e| {
                    e.method() == s.method()
                        && e.path() == s.path()
                        && e.response.as_ref().and_then(|r| r["status"].as_u64())
                            == Some(u64::from(status))
                })
            })
    }

    fn worker_condition_holds(&self, scenario: &Scenario, step: usize) -> bool {
        match self.worker.as_deref() {
            None => true,
            Some("unregistered") => {
                worker_of(scenario, step).is_some_and(|w| !seeds_worker(scenario, &w))
            }
            Some("not-the-runs") => {
                let login = basic_login(&scenario.steps[step].request);
                let assigned = assigning_step(scenario, step)
                    .and_then(|i| basic_login(&scenario.steps[i].request));
                login.is_some() && assigned.is_some() && login != assigned
            }
            Some(_) => false,
        }
    }

    /// Steps this entry names as changed by its fix: counted from the step
    /// it matches (`later[N].response…`, the Nth step after it), or, for an
    /// entry that matches several steps of one scenario, absolute
    /// (`steps[N].response…`).
    fn later_steps(&self, step: usize) -> Vec<usize> {
        let absolute = self.differs.iter().filter_map(|d| {
            let (n, tail) = d.strip_prefix("steps[")?.split_once(']')?;
            tail.starts_with(".response").then(|| n.parse().ok())?
        });
        self.differs
            .iter()
            .filter_map(|d| later_offset(d))
            .map(|(n, _)| step + n)
            .chain(absolute)
            .collect()
    }

    fn step_paths(&self, step: usize) -> Vec<String> {
        self.differs
            .iter()
            .filter_map(|d| {
                if d.starts_with("response") {
                    Some(format!("steps[{step}].{d}"))
                } else {
                    later_offset(d).map(|(n, tail)| format!("steps[{}]{tail}", step + n))
                }
            })
            .collect()
    }

    fn document_paths(&self) -> Vec<&str> {
        self.differs
            .iter()
            .filter(|d| !d.starts_with("response") && later_offset(d).is_none())
            .map(String::as_str)
            .collect()
    }
}

/// `later[N].response…` → (N, `.response…`): a step N after the matching
/// one, whose answer the entry's fix changes.
fn later_offset(path: &str) -> Option<(usize, &str)> {
    let rest = path.strip_prefix("later[")?;
    let (n, tail) = rest.split_once(']')?;
    tail.starts_with(".response")
        .then(|| n.parse().ok().map(|n| (n, tail)))?
}

/// The Basic login of a request, if it carries one.
fn basic_login(request: &Value) -> Option<String> {
    use base64::Engine;
    let header = request["headers"]
        .as_object()?
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("authorization"))?
        .1
        .as_str()?;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(header.strip_prefix("Basic ")?.trim())
        .ok()?;
    let text: String = raw.iter().map(|&b| b as char).collect();
    Some(text.split_once(':')?.0.to_string())
}

/// The earlier step whose answer created the run this step's path names.
fn assigning_step(scenario: &Scenario, step: usize) -> Option<usize> {
    let path = scenario.steps[step].path();
    (0..step).rev().find(|&i| {
        scenario.steps[i].response.as_ref().is_some_and(|r| {
            r["json"]["id"]
                .as_str()
                .is_some_and(|id| path.split('/').any(|seg| seg == id))
        })
    })
}

/// The worker a step acts for: an assign's `worker` field or login, or for
/// a request about a run, the worker of the assign that created it.
fn worker_of(scenario: &Scenario, step: usize) -> Option<String> {
    let own = |i: usize| {
        let r = &scenario.steps[i].request;
        r["json"]["worker"]
            .as_str()
            .map(str::to_string)
            .or_else(|| basic_login(r))
    };
    match assigning_step(scenario, step) {
        Some(i) => own(i),
        None => own(step),
    }
}

/// Does a seed statement insert worker `name`?
fn seeds_worker(scenario: &Scenario, name: &str) -> bool {
    let quoted = format!("'{}'", name.replace('\'', "''"));
    scenario
        .seed_sql
        .iter()
        .any(|sql| sql.contains("INTO worker") && sql.contains(&quoted))
}

pub fn under(path: &str, prefix: &str) -> bool {
    path == prefix
        || path
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('.') || rest.starts_with('['))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ledger {
    #[serde(default)]
    pub divergence: Vec<Divergence>,
    /// Recordings of a runner other than the goldens' Python (`ci/diff-python`,
    /// `replay --reference-may-agree`): an entry whose difference is gone means
    /// that runner agrees with us there, which is no error. Broken promises
    /// about our answers still are.
    #[serde(skip)]
    pub reference_may_agree: bool,
}

/// How a scenario's differences fared against the ledger.
#[derive(Debug, Default)]
pub struct Verdict {
    /// Differences no entry covers: failures.
    pub unexplained: Vec<Difference>,
    /// Differences an entry covers, with the entry id.
    pub ledgered: Vec<(String, Difference)>,
    /// Broken promises: an entry whose difference vanished, or whose
    /// promised answer we do not give.
    pub ledger_errors: Vec<String>,
    /// Ids of the entries that applied to this scenario.
    pub applied: BTreeSet<String>,
}

impl Verdict {
    pub fn passed(&self) -> bool {
        self.unexplained.is_empty() && self.ledger_errors.is_empty()
    }
}

impl Ledger {
    pub fn load(path: &Path) -> anyhow::Result<Ledger> {
        if !path.exists() {
            return Ok(Ledger::default());
        }
        let text = std::fs::read_to_string(path)?;
        let ledger: Ledger =
            toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        let mut ids = BTreeSet::new();
        for d in &ledger.divergence {
            if !ids.insert(d.id.clone()) {
                anyhow::bail!("{}: duplicate divergence id {:?}", path.display(), d.id);
            }
            // A condition that can never hold would silently widen an
            // entry (inside request_unless) or kill it: refuse it here.
            for c in d
                .request_when
                .iter()
                .chain(&d.request_unless)
                .chain(&d.when)
                .chain(&d.expect)
            {
                if let Some(kind) = &c.is {
                    const KINDS: &[&str] = &[
                        "null", "string", "number", "bool", "array", "object", "present", "absent",
                        "empty", "has-nul",
                    ];
                    if !KINDS.contains(&kind.as_str()) {
                        anyhow::bail!(
                            "{}: divergence {:?}: unknown kind {kind:?}",
                            path.display(),
                            d.id
                        );
                    }
                }
                if let Some(re) = &c.matches {
                    regex::Regex::new(re).map_err(|e| {
                        anyhow::anyhow!(
                            "{}: divergence {:?}: bad regex {re:?}: {e}",
                            path.display(),
                            d.id
                        )
                    })?;
                }
            }
            if let Some(w) = &d.worker {
                if w != "unregistered" && w != "not-the-runs" {
                    anyhow::bail!(
                        "{}: divergence {:?}: unknown worker condition {w:?}",
                        path.display(),
                        d.id
                    );
                }
            }
            if let Some(bad) = d
                .differs
                .iter()
                .find(|p| p.starts_with("later[") && later_offset(p).is_none())
            {
                anyhow::bail!(
                    "{}: divergence {:?}: {bad:?} is not `later[N].response…`",
                    path.display(),
                    d.id
                );
            }
            if d.differs.is_empty() && d.superset.is_empty() {
                anyhow::bail!(
                    "{}: divergence {:?} names no path that differs",
                    path.display(),
                    d.id
                );
            }
        }
        Ok(ledger)
    }

    /// Sort `diffs` into ledgered and unexplained, and check every applying
    /// entry's promise. `ours` is our normalised output (`steps[i].response`).
    pub fn judge(&self, scenario: &Scenario, ours: &Value, diffs: Vec<Difference>) -> Verdict {
        let mut verdict = Verdict::default();
        // (entry index, step) pairs that apply.
        let mut applying: Vec<(usize, usize)> = Vec::new();
        for (e, d) in self.divergence.iter().enumerate() {
            for i in 0..scenario.steps.len() {
                if d.applies(scenario, i) {
                    applying.push((e, i));
                    verdict.applied.insert(d.id.clone());
                }
            }
        }
        let mut used = vec![false; applying.len()];
        let mut doc_used = vec![false; self.divergence.len()];
        // Superset promises hold or fail as a whole, checked on the documents.
        let golden = crate::scenario::golden_outputs(scenario);
        let mut supersets: Vec<(usize, &str)> = Vec::new();
        for (e, entry) in self.divergence.iter().enumerate() {
            if !applying.iter().any(|(x, _)| *x == e) {
                continue;
            }
            for path in &entry.superset {
                match superset_holds(lookup(&golden, path), lookup(ours, path)) {
                    Ok(()) => supersets.push((e, path.as_str())),
                    Err(why) if why == GONE && self.reference_may_agree => {}
                    Err(why) => verdict.ledger_errors.push(format!(
                        "ledger entry {:?} promises our {path} holds every golden element: {why}",
                        entry.id
                    )),
                }
            }
        }
        for diff in diffs {
            let mut owner = None;
            if let Some((e, _)) = supersets.iter().find(|(_, p)| under(&diff.path, p)) {
                doc_used[*e] = true;
                owner = Some(self.divergence[*e].id.clone());
            }
            // The first covering entry owns the difference; every entry
            // covering it at its own step counts as still differing there.
            for (k, (e, i)) in applying.iter().enumerate() {
                let entry = &self.divergence[*e];
                if entry.step_paths(*i).iter().any(|p| under(&diff.path, p)) {
                    used[k] = true;
                    owner.get_or_insert_with(|| entry.id.clone());
                    continue;
                }
                if owner.is_some() {
                    continue;
                }
                if entry.document_paths().iter().any(|p| under(&diff.path, p)) {
                    doc_used[*e] = true;
                    owner = Some(entry.id.clone());
                    break;
                }
            }
            match owner {
                Some(id) => verdict.ledgered.push((id, diff)),
                None => verdict.unexplained.push(diff),
            }
        }
        // A fix that changes later steps names them (`later[N].response…`):
        // those steps answer differently as a whole, so the promises other
        // entries make about them are not checked.
        // An entry whose whole response differs claims its own step too.
        let claims = |e: usize, i: usize| {
            let entry = &self.divergence[e];
            let own = entry.differs.iter().any(|d| d == "response").then_some(i);
            entry.later_steps(i).into_iter().chain(own)
        };
        let claimed: BTreeSet<usize> = applying.iter().flat_map(|&(e, i)| claims(e, i)).collect();
        for (k, (e, i)) in applying.iter().enumerate() {
            let entry = &self.divergence[*e];
            if claimed.contains(i) && !claims(*e, *i).any(|c| c == *i) {
                continue;
            }
            let has_step_paths = !entry.step_paths(*i).is_empty();
            if has_step_paths && !used[k] && !self.reference_may_agree {
                verdict.ledger_errors.push(format!(
                    "ledger entry {:?} applies to steps[{i}] but nothing differs there any more: remove or narrow it",
                    entry.id
                ));
            }
            let response = &ours["steps"][*i]["response"];
            for check in &entry.expect {
                if !check.holds(response) {
                    verdict.ledger_errors.push(format!(
                        "ledger entry {:?} promises `{check}` at steps[{i}], but our answer is {}",
                        entry.id,
                        serde_json::to_string(response).unwrap_or_default()
                    ));
                }
            }
        }
        for (e, entry) in self.divergence.iter().enumerate() {
            let applies_here = applying.iter().any(|(x, _)| *x == e);
            let only_doc = entry.differs.iter().all(|d| !d.starts_with("response"));
            let promised = !entry.differs.is_empty() || supersets.iter().any(|(x, _)| *x == e);
            if applies_here && only_doc && promised && !doc_used[e] && !self.reference_may_agree {
                verdict.ledger_errors.push(format!(
                    "ledger entry {:?} applies but none of its paths differ any more: remove or narrow it",
                    entry.id
                ));
            }
        }
        verdict
    }

    /// Entries that apply to none of `scenarios`: the ledger must not rot.
    pub fn unused<'a>(&'a self, scenarios: &[Scenario]) -> Vec<&'a str> {
        self.divergence
            .iter()
            .filter(|d| {
                !scenarios
                    .iter()
                    .any(|s| (0..s.steps.len()).any(|i| d.applies(s, i)))
            })
            .map(|d| d.id.as_str())
            .collect()
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pending {
    #[serde(default)]
    pub pending: Vec<PendingEntry>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PendingEntry {
    pub scenario: String,
    /// What is missing before it can pass.
    pub missing: String,
}

impl Pending {
    pub fn load(path: &Path) -> anyhow::Result<Pending> {
        if !path.exists() {
            return Ok(Pending::default());
        }
        let text = std::fs::read_to_string(path)?;
        toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
    }

    pub fn get(&self, scenario: &str) -> Option<&PendingEntry> {
        self.pending.iter().find(|p| p.scenario == scenario)
    }

    pub fn len(&self) -> usize {
        self.pending.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }
}

#[cfg(test)]
mod tests;
