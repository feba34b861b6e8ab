//! ActiveRun (data-types.md §3) and its backchannel (§4), as stored in the
//! Redis hash `active-runs`.

use super::time::{isoformat, parse_naive, seconds_between};
use chrono::NaiveDateTime;
use serde::Serialize;
use serde_json::{Map, Value};

#[derive(Debug, Clone, PartialEq)]
pub enum Backchannel {
    None,
    /// The worker's own HTTP server (`kind: "http"`).
    Polling {
        my_url: String,
    },
    /// A Jenkins build (`kind: "jenkins"`).
    Jenkins {
        my_url: String,
    },
}

impl Backchannel {
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        match self {
            Backchannel::None => {}
            Backchannel::Polling { my_url } => {
                m.insert("my_url".into(), Value::String(my_url.clone()));
            }
            Backchannel::Jenkins { my_url } => {
                m.insert("my_url".into(), Value::String(my_url.clone()));
                m.insert("jenkins".into(), Value::Null);
            }
        }
        Value::Object(m)
    }

    /// The stored form: `jenkins` key checked first, then `my_url`.
    pub fn from_json(v: &Value) -> Backchannel {
        let url = v.get("my_url").and_then(Value::as_str).map(str::to_string);
        match (v.get("jenkins").is_some(), url) {
            (true, Some(my_url)) => Backchannel::Jenkins { my_url },
            (false, Some(my_url)) => Backchannel::Polling { my_url },
            _ => Backchannel::None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ActiveRun {
    pub queue_id: i64,
    /// The run id.
    pub log_id: String,
    pub codebase: Option<String>,
    pub change_set: Option<String>,
    pub campaign: String,
    pub command: String,
    /// Seconds; `None` when absent or zero.
    pub estimated_duration: Option<f64>,
    pub start_time: NaiveDateTime,
    pub worker_name: Option<String>,
    pub worker_link: Option<String>,
    /// VcsInfo (data-types.md §2): keys `branch_url`, `subpath`, `vcs_type` in that order.
    pub vcs_info: Map<String, Value>,
    pub backchannel: Backchannel,
    pub instigated_context: Value,
    pub resume_from: Option<String>,
}

/// The JSON form, fields in upstream order.
#[derive(Serialize)]
struct ActiveRunJson<'a> {
    queue_id: i64,
    id: &'a str,
    codebase: &'a Option<String>,
    change_set: &'a Option<String>,
    campaign: &'a str,
    command: &'a str,
    estimated_duration: Option<f64>,
    current_duration: f64,
    start_time: String,
    worker: &'a Option<String>,
    worker_link: &'a Option<String>,
    vcs: &'a Map<String, Value>,
    backchannel: Value,
    instigated_context: &'a Value,
    resume_from: &'a Option<String>,
}

#[derive(Debug, thiserror::Error)]
#[error("malformed active run: {0}")]
pub struct ActiveRunError(pub String);

impl ActiveRun {
    /// `json()`: `current_duration` is computed against `now`.
    pub fn to_json(&self, now: &NaiveDateTime) -> Value {
        let j = ActiveRunJson {
            queue_id: self.queue_id,
            id: &self.log_id,
            codebase: &self.codebase,
            change_set: &self.change_set,
            campaign: &self.campaign,
            command: &self.command,
            estimated_duration: self.estimated_duration.filter(|d| *d != 0.0),
            current_duration: seconds_between(now, &self.start_time),
            start_time: isoformat(&self.start_time),
            worker: &self.worker_name,
            worker_link: &self.worker_link,
            vcs: &self.vcs_info,
            backchannel: self.backchannel.to_json(),
            instigated_context: &self.instigated_context,
            resume_from: &self.resume_from,
        };
        serde_json::to_value(j).expect("serialisable")
    }

    /// `from_json` (data-types.md §3.3).
    pub fn from_json(v: &Value) -> Result<ActiveRun, ActiveRunError> {
        let req = |k: &str| {
            v.get(k)
                .ok_or_else(|| ActiveRunError(format!("missing {k}")))
        };
        let opt_str = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
        let start = req("start_time")?
            .as_str()
            .and_then(parse_naive)
            .ok_or_else(|| ActiveRunError("bad start_time".into()))?;
        for k in [
            "backchannel",
            "change_set",
            "instigated_context",
            "worker",
            "worker_link",
        ] {
            req(k)?;
        }
        Ok(ActiveRun {
            queue_id: req("queue_id")?
                .as_i64()
                .ok_or_else(|| ActiveRunError("bad queue_id".into()))?,
            log_id: req("id")?
                .as_str()
                .ok_or_else(|| ActiveRunError("bad id".into()))?
                .to_string(),
            codebase: opt_str("codebase"),
            change_set: opt_str("change_set"),
            campaign: req("campaign")?
                .as_str()
                .ok_or_else(|| ActiveRunError("bad campaign".into()))?
                .to_string(),
            command: req("command")?.as_str().unwrap_or_default().to_string(),
            estimated_duration: v
                .get("estimated_duration")
                .and_then(Value::as_f64)
                .filter(|d| *d != 0.0),
            start_time: start,
            worker_name: opt_str("worker"),
            worker_link: opt_str("worker_link"),
            vcs_info: req("vcs")?.as_object().cloned().unwrap_or_default(),
            backchannel: Backchannel::from_json(req("backchannel")?),
            instigated_context: req("instigated_context")?.clone(),
            resume_from: opt_str("resume_from"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ActiveRun {
        let mut vcs = Map::new();
        vcs.insert("vcs_type".into(), Value::String("git".into()));
        ActiveRun {
            queue_id: 1,
            log_id: "5d9c0000-0000-4000-8000-000000000000".into(),
            codebase: Some("foo".into()),
            change_set: None,
            campaign: "mycampaign".into(),
            command: "true".into(),
            estimated_duration: Some(15.0),
            start_time: parse_naive("2024-05-01T10:00:00.123456").unwrap(),
            worker_name: Some("w1".into()),
            worker_link: None,
            vcs_info: vcs,
            backchannel: Backchannel::Polling {
                my_url: "http://w1:8080/".into(),
            },
            instigated_context: Value::Null,
            resume_from: None,
        }
    }

    #[test]
    fn json_round_trips_and_keeps_upstream_key_order() {
        let run = sample();
        let now = parse_naive("2024-05-01T10:00:01.123456").unwrap();
        let j = run.to_json(&now);
        assert_eq!(j["current_duration"], serde_json::json!(1.0));
        let keys: Vec<&str> = j.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys[..4], ["queue_id", "id", "codebase", "change_set"]);
        assert_eq!(ActiveRun::from_json(&j).unwrap(), run);
    }

    #[test]
    fn zero_estimated_duration_is_null() {
        let mut run = sample();
        run.estimated_duration = Some(0.0);
        assert!(run.to_json(&run.start_time)["estimated_duration"].is_null());
    }

    #[test]
    fn jenkins_is_recognised_before_polling() {
        let b = Backchannel::Jenkins {
            my_url: "http://j/job/1/".into(),
        };
        assert_eq!(Backchannel::from_json(&b.to_json()), b);
        assert_eq!(
            Backchannel::from_json(&serde_json::json!({})),
            Backchannel::None
        );
    }

    #[test]
    fn missing_required_keys_are_errors() {
        let mut j = sample().to_json(&sample().start_time);
        j.as_object_mut().unwrap().remove("worker");
        assert!(ActiveRun::from_json(&j).is_err());
    }
}
