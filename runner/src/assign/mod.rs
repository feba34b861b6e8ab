//! The assignment procedure (runner-internals.md §3, §4): pick the next queue
//! item, claim it in Redis, abort items that cannot run, and build the
//! Assignment the worker receives (data-types.md §9).

use crate::app::App;
use crate::config::{Campaign, DebianBuild, Distribution};
use crate::db;
use crate::finish::FinishError;
use crate::state::{self, StateError};
use crate::types::result::JanitorResult;
use crate::types::{ActiveRun, Backchannel};
use crate::vcs::{self, BranchOpener, VcsManager};
use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::BTreeSet;
use std::sync::{Arc, LazyLock, OnceLock};

mod build;
mod build_config;
mod claim;
mod request;
mod select;
mod wire;

pub use crate::py::shlex::{shlex_quote, shlex_split, splitout_env};
use build::*;
pub use build_config::committer_env;
use build_config::*;
use claim::*;
pub use claim::{check_claimed, next_item, Claimed};
pub use request::parse_backchannel;
pub use select::SelectionPool;
use select::Shared;
pub use wire::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Assign,
    /// Build the assignment, then release the claim again (§4.11).
    Peek,
}

/// What the caller asks for; every field optional.
#[derive(Debug, Clone)]
pub struct Request {
    pub worker: Option<String>,
    pub worker_link: Option<String>,
    pub backchannel: Backchannel,
    pub codebase: Option<String>,
    pub campaign: Option<String>,
}

impl Default for Request {
    fn default() -> Self {
        Request {
            worker: None,
            worker_link: None,
            backchannel: Backchannel::None,
            codebase: None,
            campaign: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AssignError {
    #[error("queue empty")]
    QueueEmpty,
    /// The forge rate-limited the resume lookup (§4.3); the item was
    /// aborted and the host is excluded until the limit ends.
    #[error("rate limited")]
    RateLimited,
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<sqlx::Error> for AssignError {
    fn from(e: sqlx::Error) -> Self {
        AssignError::Internal(e.into())
    }
}

impl From<StateError> for AssignError {
    fn from(e: StateError) -> Self {
        AssignError::Internal(e.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn committer_env_splits_name_and_email() {
        let env = committer_env("Joe Example <joe@example.com>");
        assert_eq!(env.len(), 9);
        assert_eq!(env["DEBFULLNAME"], json!("Joe Example"));
        assert_eq!(env["EMAIL"], json!("joe@example.com"));
        assert_eq!(env["BRZ_EMAIL"], json!("Joe Example <joe@example.com>"));
        let env = committer_env("nobody");
        assert_eq!(env["GIT_AUTHOR_NAME"], json!("nobody"));
        assert!(!env.contains_key("EMAIL"));
    }

    #[test]
    fn splitout_env_takes_leading_assignments_and_requotes() {
        let (env, cmd) = splitout_env(r#"A=1 B="x y" cmd 'a b' c=d"#).unwrap();
        assert_eq!(env, [("A".into(), "1".into()), ("B".into(), "x y".into())]);
        assert_eq!(cmd, "cmd 'a b' c=d");
        let (_, cmd) = splitout_env("echo \"it's\" ''").unwrap();
        assert_eq!(cmd, "echo 'it'\"'\"'s' ''");
        assert!(splitout_env("echo 'open").is_err());
    }

    #[test]
    fn backchannel_requests() {
        assert_eq!(parse_backchannel(None).unwrap(), Backchannel::None);
        assert_eq!(
            parse_backchannel(Some(&json!({}))).unwrap(),
            Backchannel::None
        );
        assert_eq!(
            parse_backchannel(Some(
                &json!({"kind": "http", "url": "HTTP://W1.Example:80/x"})
            ))
            .unwrap(),
            Backchannel::Polling {
                my_url: "http://w1.example:80/x".into()
            }
        );
        assert_eq!(
            parse_backchannel(Some(&json!({"kind": "jenkins", "url": "http://j/job/1/"}))).unwrap(),
            Backchannel::Jenkins {
                my_url: "http://j/job/1/".into()
            }
        );
        assert_eq!(
            parse_backchannel(Some(&json!({"kind": "ssh", "url": 1}))).unwrap(),
            Backchannel::None
        );
        assert!(parse_backchannel(Some(&json!({"url": "http://w/"}))).is_err());
        // Only http(s) backchannels are ever contacted (divergence-policy §3).
        for bad in ["file:///etc/", "ftp://w/", "gopher://127.0.0.1:1/"] {
            let err = parse_backchannel(Some(&json!({"kind": "http", "url": bad}))).unwrap_err();
            assert!(err.contains("http or https"), "{bad}: {err}");
        }
        assert!(parse_backchannel(Some(&json!({"kind": "http"}))).is_err());
        assert!(parse_backchannel(Some(&json!("http://w/"))).is_err());
    }

    #[test]
    fn vcs_info_keeps_empty_subpath_and_skips_empty_url() {
        let item = db::queue::NextItem {
            id: 1,
            command: None,
            context: None,
            estimated_duration: None,
            campaign: "c".into(),
            refresh: None,
            requester: None,
            change_set: None,
            codebase: "x".into(),
            vcs_type: Some("git".into()),
            branch_url: Some(String::new()),
            subpath: Some(String::new()),
        };
        assert_eq!(
            json!(vcs_info(&item)),
            json!({"subpath": "", "vcs_type": "git"})
        );
    }
}
