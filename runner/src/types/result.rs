//! What a worker reports (`result.json`, data-types.md §5), the runner's
//! result built from it or from an abort (§6), and builder results (§7).
//!
//! Upstream turns malformed input into 500s while storing; here every field
//! is checked while parsing, so a bad `result.json` is refused (400) before
//! anything is stored (divergence-policy §2).

use super::time::{isoformat, parse_naive, seconds_between};
use super::ActiveRun;
use crate::db::enums::VcsType;
use crate::py::repr::truthy;
use chrono::{Duration, NaiveDateTime, Timelike};
use serde::Serialize;
use serde_json::{Map, Value};

/// A worker-supplied `result.json` that cannot be stored; the text is the 400 reason.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidResult(pub String);

fn invalid(msg: impl Into<String>) -> InvalidResult {
    InvalidResult(msg.into())
}

/// A timestamp from a worker: naive (kept as given) or with a zone (stored
/// as naive UTC, echoed with its offset as Python's `isoformat()` would).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WorkerTime {
    /// Wall-clock time as written, microseconds truncated.
    pub local: NaiveDateTime,
    /// Offset east of UTC in seconds; `None` for naive input.
    pub offset: Option<i32>,
}

impl WorkerTime {
    pub fn naive(t: NaiveDateTime) -> WorkerTime {
        WorkerTime {
            local: truncate_micros(t),
            offset: None,
        }
    }

    /// The value stored in `timestamp without time zone` columns.
    pub fn utc(&self) -> NaiveDateTime {
        self.local - Duration::seconds(self.offset.unwrap_or(0) as i64)
    }

    /// `datetime.fromisoformat` plus RFC 3339: `Z`/`z`, `±HH:MM`, `±HHMM` or
    /// `±HH` suffixes and any number of fractional digits. Surrounding
    /// whitespace is refused, as `fromisoformat` refuses it.
    pub fn parse(s: &str) -> Option<WorkerTime> {
        let (body, offset) = split_offset(s)?;
        let local = parse_naive(body)?;
        Some(WorkerTime {
            local: truncate_micros(local),
            offset,
        })
    }

    /// Python `isoformat()`.
    pub fn isoformat(&self) -> String {
        let mut out = isoformat(&self.local);
        if let Some(off) = self.offset {
            let sign = if off < 0 { '-' } else { '+' };
            let a = off.unsigned_abs();
            out.push_str(&format!("{sign}{:02}:{:02}", a / 3600, (a % 3600) / 60));
            if a % 60 != 0 {
                out.push_str(&format!(":{:02}", a % 60));
            }
        }
        out
    }
}

fn truncate_micros(t: NaiveDateTime) -> NaiveDateTime {
    let micros = t.nanosecond() / 1000 * 1000;
    t.with_nanosecond(micros).unwrap_or(t)
}

/// Splits a zone suffix off an ISO 8601 datetime. The date part contains
/// `-`, so only a sign after the `T`/space separator starts an offset.
fn split_offset(s: &str) -> Option<(&str, Option<i32>)> {
    if let Some(body) = s.strip_suffix(['Z', 'z']) {
        return Some((body, Some(0)));
    }
    let time_start = s.find(['T', 't', ' ']).map(|i| i + 1).unwrap_or(s.len());
    let Some(rel) = s[time_start..].find(['+', '-']) else {
        return Some((s, None));
    };
    let at = time_start + rel;
    let (body, zone) = (&s[..at], &s[at..]);
    let sign = if zone.starts_with('-') { -1 } else { 1 };
    let digits: String = zone[1..].chars().filter(|c| *c != ':').collect();
    if !digits.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let (h, m, sec) = match digits.len() {
        2 => (&digits[..2], "0", "0"),
        4 => (&digits[..2], &digits[2..4], "0"),
        6 => (&digits[..2], &digits[2..4], &digits[4..6]),
        _ => return None,
    };
    let (h, m, sec): (i32, i32, i32) = (h.parse().ok()?, m.parse().ok()?, sec.parse().ok()?);
    if h > 23 || m > 59 || sec > 59 {
        return None;
    }
    Some((body, Some(sign * (h * 3600 + m * 60 + sec))))
}

/// `[role, remote_name, base_revision, revision]`; revisions empty → `None`.
#[derive(Debug, Clone, PartialEq)]
pub struct ResultBranch {
    pub role: String,
    pub remote_name: Option<String>,
    pub base_revision: Option<String>,
    pub revision: Option<String>,
}

/// `[name, revision]`.
#[derive(Debug, Clone, PartialEq)]
pub struct ResultTag {
    pub name: Option<String>,
    pub revision: String,
}

/// A builder result (data-types.md §7), chosen by `target.name`.
#[derive(Debug, Clone, PartialEq)]
pub enum BuilderResult {
    Generic,
    Debian(Box<DebianResult>),
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct DebianResult {
    pub lintian_result: Value,
    pub source: Option<String>,
    pub build_version: Option<String>,
    pub build_distribution: Option<String>,
    pub changes_filenames: Option<Vec<String>>,
    pub binary_packages: Option<Vec<String>>,
    /// Per `.changes` file: the files it lists, then its own name.
    pub artifact_names: Vec<String>,
}

#[derive(Serialize)]
struct DebianJson<'a> {
    build_distribution: &'a Option<String>,
    build_version: &'a Option<String>,
    changes_filenames: &'a Option<Vec<String>>,
    lintian: &'a Value,
    binary_packages: &'a Option<Vec<String>>,
}

impl BuilderResult {
    pub fn kind(&self) -> &'static str {
        match self {
            BuilderResult::Generic => "generic",
            BuilderResult::Debian(_) => "debian",
        }
    }

    /// Python truthiness: a Debian result without `.changes` files is falsy.
    pub fn is_truthy(&self) -> bool {
        match self {
            BuilderResult::Generic => true,
            BuilderResult::Debian(d) => d.changes_filenames.is_some(),
        }
    }

    pub fn details_json(&self) -> Value {
        match self {
            BuilderResult::Generic => Value::Object(Map::new()),
            BuilderResult::Debian(d) => serde_json::to_value(DebianJson {
                build_distribution: &d.build_distribution,
                build_version: &d.build_version,
                changes_filenames: &d.changes_filenames,
                lintian: &d.lintian_result,
                binary_packages: &d.binary_packages,
            })
            .unwrap_or(Value::Null),
        }
    }

    pub fn artifact_names(&self) -> Vec<String> {
        match self {
            BuilderResult::Generic => Vec::new(),
            BuilderResult::Debian(d) => d.artifact_names.clone(),
        }
    }
}

/// The parsed `result.json`.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerResult {
    /// `None` when absent, null or empty: a success (divergence-policy §3).
    pub code: Option<String>,
    pub description: Option<String>,
    pub context: Option<String>,
    pub codemod: Value,
    pub main_branch_revision: Option<String>,
    pub revision: Option<String>,
    pub value: Option<i32>,
    pub branches: Option<Vec<ResultBranch>>,
    pub tags: Option<Vec<ResultTag>>,
    pub remotes: Value,
    pub details: Value,
    pub stage: Option<String>,
    pub builder_result: Option<BuilderResult>,
    pub start_time: WorkerTime,
    pub finish_time: WorkerTime,
    /// Saturated beyond i128; unused, as upstream.
    pub queue_id: Option<i128>,
    pub worker_name: Option<String>,
    pub refreshed: bool,
    pub target_branch_url: Option<String>,
    pub branch_url: Option<String>,
    pub vcs_type: Option<VcsType>,
    pub subpath: Option<String>,
    pub transient: Option<bool>,
    pub codebase: Option<String>,
}

fn opt_str(obj: &Map<String, Value>, key: &str) -> Result<Option<String>, InvalidResult> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(invalid(format!("{key} must be a string or null"))),
    }
}

/// A revision id: text, the empty string meaning none.
fn revision(v: &Value, what: &str) -> Result<Option<String>, InvalidResult> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) if s.is_empty() => Ok(None),
        Value::String(s) => Ok(Some(s.clone())),
        _ => Err(invalid(format!("{what} must be a string or null"))),
    }
}

fn time(obj: &Map<String, Value>, key: &str) -> Result<WorkerTime, InvalidResult> {
    match obj.get(key) {
        None | Some(Value::Null) => Err(invalid(format!("result.json lacks {key}"))),
        Some(Value::String(s)) => WorkerTime::parse(s)
            .ok_or_else(|| invalid(format!("{key} is not an ISO 8601 timestamp: {s:?}"))),
        Some(_) => Err(invalid(format!("{key} must be a string"))),
    }
}

/// `int(value)` for a truthy value (floats truncated, integer strings parsed).
fn int_value(v: &Value) -> Result<Option<i32>, InvalidResult> {
    if !truthy(v) {
        return Ok(None);
    }
    let n = match v {
        Value::Bool(_) | Value::Number(_) => crate::py::int::int_of_number(v),
        Value::String(s) => crate::py::int::int_from_str(s),
        _ => None,
    };
    match n {
        Some(n) => i32::try_from(n)
            .map(Some)
            .map_err(|_| invalid(format!("value {v} is out of range"))),
        None => Err(invalid("value must be an integer")),
    }
}

fn branches(v: Option<&Value>) -> Result<Option<Vec<ResultBranch>>, InvalidResult> {
    let items = match v {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Array(items)) => items,
        Some(_) => return Err(invalid("branches must be a list")),
    };
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let Some([role, remote, base, rev]) = item.as_array().map(Vec::as_slice) else {
            return Err(invalid(
                "each branch must be [role, remote_name, base_revision, revision]",
            ));
        };
        let Value::String(role) = role else {
            return Err(invalid("branch role must be a string"));
        };
        let remote_name = match remote {
            Value::Null => None,
            Value::String(s) => Some(s.clone()),
            _ => return Err(invalid("branch remote_name must be a string or null")),
        };
        if out.iter().any(|b: &ResultBranch| &b.role == role) {
            return Err(invalid(format!("duplicate result branch role {role:?}")));
        }
        out.push(ResultBranch {
            role: role.clone(),
            remote_name,
            base_revision: revision(base, "branch base_revision")?,
            revision: revision(rev, "branch revision")?,
        });
    }
    Ok(Some(out))
}

fn tags(v: Option<&Value>) -> Result<Option<Vec<ResultTag>>, InvalidResult> {
    let items = match v {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Array(items)) => items,
        Some(_) => return Err(invalid("tags must be a list")),
    };
    items
        .iter()
        .map(|item| match item.as_array().map(Vec::as_slice) {
            Some([name, Value::String(rev)]) => Ok(ResultTag {
                name: match name {
                    Value::Null => None,
                    Value::String(s) => Some(s.clone()),
                    _ => return Err(invalid("tag name must be a string")),
                },
                revision: rev.clone(),
            }),
            _ => Err(invalid(
                "each tag must be [name, revision] with a revision string",
            )),
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

fn builder_result(v: Option<&Value>) -> Result<Option<BuilderResult>, InvalidResult> {
    let Some(target) = v else { return Ok(None) };
    let Some(target) = target.as_object() else {
        return Err(invalid("target must be an object"));
    };
    let name = match target.get("name") {
        None => return Err(invalid("target lacks name")),
        Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) => s.as_str(),
        Some(other) => {
            return Err(invalid(format!(
                "unsupported build target {}",
                crate::py::repr::repr(other)
            )))
        }
    };
    if name != "generic" && name != "debian" {
        return Err(invalid(format!(
            "unsupported build target {}",
            crate::py::repr::repr_str(name)
        )));
    }
    let details = match target.get("details") {
        None => return Err(invalid("target lacks details")),
        Some(Value::Null) => return Ok(None),
        Some(d) => d,
    };
    Ok(Some(match name {
        "generic" => BuilderResult::Generic,
        _ => {
            let Some(details) = details.as_object() else {
                return Err(invalid("debian target details must be an object"));
            };
            BuilderResult::Debian(Box::new(DebianResult {
                lintian_result: details.get("lintian").cloned().unwrap_or(Value::Null),
                ..Default::default()
            }))
        }
    }))
}

impl WorkerResult {
    /// Parse `result.json` bytes (UTF-8 JSON object).
    pub fn from_slice(bytes: &[u8]) -> Result<WorkerResult, InvalidResult> {
        let v: Value = serde_json::from_slice(bytes)
            .map_err(|e| invalid(format!("result.json is not valid JSON: {e}")))?;
        if let Some(at) = crate::validate::find_nul(&v) {
            return Err(invalid(format!("NUL character in result.json at {at}")));
        }
        WorkerResult::from_json(&v)
    }

    pub fn from_json(v: &Value) -> Result<WorkerResult, InvalidResult> {
        let Some(obj) = v.as_object() else {
            return Err(invalid("result.json must be a JSON object"));
        };
        let context = match obj.get("context") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => return Err(invalid("context must be a string or null")),
        };
        let vcs_type = opt_str(obj, "vcs_type")?
            .map(|t| {
                t.parse::<VcsType>()
                    .map_err(|_| invalid(format!("unknown vcs_type {t:?}")))
            })
            .transpose()?;
        // `int(worker_result["queue_id"])`, otherwise unused upstream: any
        // number or bool goes (`int(1.5)`, `int(True)`), lest a result be lost.
        let queue_id = match obj.get("queue_id") {
            None => None,
            Some(v @ (Value::Number(_) | Value::Bool(_))) => crate::py::int::int_of_number(v),
            Some(Value::String(s)) => Some(
                crate::py::int::int_from_str(s)
                    .ok_or_else(|| invalid("queue_id must be an integer"))?,
            ),
            Some(_) => return Err(invalid("queue_id must be an integer")),
        };
        let transient = match obj.get("transient") {
            None | Some(Value::Null) => None,
            Some(Value::Bool(b)) => Some(*b),
            Some(_) => return Err(invalid("transient must be a boolean or null")),
        };
        let start_time = time(obj, "start_time")?;
        let finish_time = time(obj, "finish_time")?;
        if finish_time.utc() < start_time.utc() {
            return Err(invalid("finish_time is before start_time"));
        }
        let result = WorkerResult {
            code: opt_str(obj, "code")?.filter(|c| !c.is_empty()),
            description: opt_str(obj, "description")?,
            context,
            codemod: obj.get("codemod").cloned().unwrap_or(Value::Null),
            main_branch_revision: revision(
                obj.get("main_branch_revision").unwrap_or(&Value::Null),
                "main_branch_revision",
            )?,
            revision: revision(obj.get("revision").unwrap_or(&Value::Null), "revision")?,
            value: int_value(obj.get("value").unwrap_or(&Value::Null))?,
            branches: branches(obj.get("branches"))?,
            tags: tags(obj.get("tags"))?,
            remotes: obj.get("remotes").cloned().unwrap_or(Value::Null),
            details: obj.get("details").cloned().unwrap_or(Value::Null),
            stage: opt_str(obj, "stage")?,
            builder_result: builder_result(obj.get("target"))?,
            start_time,
            finish_time,
            queue_id,
            worker_name: opt_str(obj, "worker_name")?,
            refreshed: obj.get("refreshed").is_some_and(truthy),
            target_branch_url: opt_str(obj, "target_branch_url")?,
            branch_url: opt_str(obj, "branch_url")?,
            vcs_type,
            subpath: opt_str(obj, "subpath")?,
            transient,
            codebase: opt_str(obj, "codebase")?,
        };
        result.check_indexed_lengths()?;
        Ok(result)
    }

    /// Values stored in indexed columns (run.result_code, run.revision,
    /// run.main_branch_revision, new_result_branch.revision) must fit a
    /// btree index row (~2.7 kB): a 400 here, not a 500 from PostgreSQL.
    fn check_indexed_lengths(&self) -> Result<(), InvalidResult> {
        let branch_revisions = self
            .branches
            .iter()
            .flatten()
            .map(|b| ("branches[].revision", b.revision.as_deref()));
        let fields = [
            ("code", self.code.as_deref()),
            ("stage", self.stage.as_deref()),
            ("revision", self.revision.as_deref()),
            ("main_branch_revision", self.main_branch_revision.as_deref()),
        ];
        for (name, value) in fields.into_iter().chain(branch_revisions) {
            if value.is_some_and(|v| v.len() > MAX_INDEXED_TEXT) {
                return Err(invalid(format!(
                    "{name} is longer than {MAX_INDEXED_TEXT} bytes"
                )));
            }
        }
        Ok(())
    }
}

/// Longest text accepted for a value that lands in an indexed column.
pub const MAX_INDEXED_TEXT: usize = 1024;

/// The runner's record of a finished run (data-types.md §6).
#[derive(Debug, Clone, PartialEq)]
pub struct JanitorResult {
    pub codebase: String,
    pub campaign: String,
    pub change_set: Option<String>,
    pub log_id: String,
    pub description: Option<String>,
    pub code: String,
    pub failure_details: Value,
    pub failure_stage: Option<String>,
    pub start_time: WorkerTime,
    pub finish_time: WorkerTime,
    pub transient: Option<bool>,
    pub builder_result: Option<BuilderResult>,
    pub logfilenames: Vec<String>,
    pub codemod: Value,
    pub value: Option<i32>,
    pub remotes: Value,
    pub branch_url: Option<String>,
    pub resume_from: Option<String>,
    pub branches: Option<Vec<ResultBranch>>,
    pub tags: Option<Vec<ResultTag>>,
    pub revision: Option<String>,
    pub main_branch_revision: Option<String>,
    pub worker_name: Option<String>,
    pub context: Option<String>,
    pub vcs_type: Option<String>,
    pub subpath: Option<String>,
    pub target_branch_url: Option<String>,
}

#[derive(Serialize)]
struct JanitorResultJson<'a> {
    codebase: &'a str,
    campaign: &'a str,
    change_set: &'a Option<String>,
    log_id: &'a str,
    description: &'a Option<String>,
    code: &'a str,
    failure_details: &'a Value,
    failure_stage: &'a Option<String>,
    duration: f64,
    finish_time: String,
    start_time: String,
    transient: Option<bool>,
    target: Value,
    logfilenames: &'a [String],
    codemod: &'a Value,
    value: Option<i32>,
    remotes: &'a Value,
    branch_url: &'a Option<String>,
    resume: Value,
    branches: Option<Vec<Value>>,
    tags: Option<Vec<Value>>,
    revision: &'a Option<String>,
    main_branch_revision: &'a Option<String>,
}

impl JanitorResult {
    /// From a worker's report (finish, http-api §4 step 3).
    pub fn from_worker(run: &ActiveRun, worker: WorkerResult, logfilenames: Vec<String>) -> Self {
        JanitorResult {
            codebase: worker
                .codebase
                .filter(|c| !c.is_empty())
                .or_else(|| run.codebase.clone())
                .unwrap_or_default(),
            campaign: run.campaign.clone(),
            change_set: run.change_set.clone(),
            log_id: run.log_id.clone(),
            description: worker.description,
            code: worker.code.unwrap_or_else(|| "success".to_string()),
            failure_details: worker.details,
            failure_stage: worker.stage,
            start_time: worker.start_time,
            finish_time: worker.finish_time,
            transient: worker.transient,
            builder_result: worker.builder_result,
            logfilenames,
            codemod: worker.codemod,
            value: worker.value,
            remotes: worker.remotes,
            branch_url: worker.branch_url,
            resume_from: if worker.refreshed {
                None
            } else {
                run.resume_from.clone()
            },
            branches: worker.branches,
            tags: worker.tags,
            revision: worker.revision,
            main_branch_revision: worker.main_branch_revision,
            worker_name: run.worker_name.clone().or(worker.worker_name),
            context: worker.context,
            // A string from here on: an aborted run's comes from the
            // active run's VCS info, as upstream stores it.
            vcs_type: worker.vcs_type.map(|t| t.as_str().to_owned()),
            subpath: worker.subpath,
            target_branch_url: worker.target_branch_url,
        }
    }

    /// A result without worker data (aborts, internals §7.2): run start to
    /// `now`, `resume_from` always null (QD-3), `remotes` `{}`.
    pub fn aborted(
        run: &ActiveRun,
        code: &str,
        description: Option<String>,
        transient: Option<bool>,
        now: NaiveDateTime,
    ) -> Self {
        let vcs = |k: &str| {
            run.vcs_info
                .get(k)
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        JanitorResult {
            codebase: run.codebase.clone().unwrap_or_default(),
            campaign: run.campaign.clone(),
            change_set: run.change_set.clone(),
            log_id: run.log_id.clone(),
            description,
            code: code.to_string(),
            failure_details: Value::Null,
            failure_stage: None,
            start_time: WorkerTime::naive(run.start_time),
            finish_time: WorkerTime::naive(now),
            transient,
            builder_result: None,
            logfilenames: Vec::new(),
            codemod: Value::Null,
            value: None,
            remotes: Value::Object(Map::new()),
            branch_url: vcs("branch_url"),
            resume_from: None,
            branches: None,
            tags: None,
            revision: None,
            main_branch_revision: None,
            worker_name: run.worker_name.clone(),
            context: None,
            vcs_type: vcs("vcs_type"),
            subpath: None,
            target_branch_url: None,
        }
    }

    /// `finish_time - start_time` in seconds.
    pub fn duration(&self) -> f64 {
        seconds_between(&self.finish_time.utc(), &self.start_time.utc())
    }

    /// `json()`, keys in upstream order.
    pub fn to_json(&self) -> Value {
        let target = match &self.builder_result {
            Some(b) if b.is_truthy() => {
                let mut m = Map::new();
                m.insert("name".into(), Value::String(b.kind().into()));
                m.insert("details".into(), b.details_json());
                Value::Object(m)
            }
            _ => Value::Object(Map::new()),
        };
        let resume = match &self.resume_from {
            Some(id) if !id.is_empty() => serde_json::json!({ "run_id": id }),
            _ => Value::Null,
        };
        let j = JanitorResultJson {
            codebase: &self.codebase,
            campaign: &self.campaign,
            change_set: &self.change_set,
            log_id: &self.log_id,
            description: &self.description,
            code: &self.code,
            failure_details: &self.failure_details,
            failure_stage: &self.failure_stage,
            duration: self.duration(),
            finish_time: self.finish_time.isoformat(),
            start_time: self.start_time.isoformat(),
            transient: self.transient,
            target,
            logfilenames: &self.logfilenames,
            codemod: &self.codemod,
            value: self.value,
            remotes: &self.remotes,
            branch_url: &self.branch_url,
            resume,
            branches: self.branches.as_ref().map(|bs| {
                bs.iter()
                    .map(|b| {
                        serde_json::json!([b.role, b.remote_name, b.base_revision, b.revision])
                    })
                    .collect()
            }),
            tags: self.tags.as_ref().map(|ts| {
                ts.iter()
                    .map(|t| serde_json::json!([t.name, t.revision]))
                    .collect()
            }),
            revision: &self.revision,
            main_branch_revision: &self.main_branch_revision,
        };
        serde_json::to_value(j).unwrap_or(Value::Null)
    }
}

#[cfg(test)]
mod tests;
