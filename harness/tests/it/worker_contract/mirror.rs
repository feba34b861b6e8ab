//! The real worker's view of an assignment, mirrored field for field from
//! jelmer/janitor `src/api/worker.rs` (commit 77f6723fc2e94e5334d8a1adfec717b04d14f3aa;
//! the structs are the same at 148d616cae4f1f432aa1c598f4be8804a555f388), with
//! `VcsType` from `src/vcs.rs` of the same repository. Deliberately independent of
//! the runner's own types: this is what `janitor-worker` deserializes, with its
//! strictness (required fields, no nulls where it wants a value).
//!
//! Two stand-ins keep the strictness without new dependencies: `WireUrl` parses
//! like `url::Url` with its serde feature (a string that must be a valid URL),
//! and revision ids are strings (breezyshim's `RevisionId` reads a string).

#![allow(dead_code)] // fields exist to be type-checked by serde, not read

use serde::{Deserialize, Deserializer};
use std::collections::HashMap;
use std::path::PathBuf;

/// `url::Url` as its serde impl reads it.
#[derive(Debug, Clone)]
pub struct WireUrl(pub url::Url);

impl<'de> Deserialize<'de> for WireUrl {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        url::Url::parse(&s)
            .map(WireUrl)
            .map_err(serde::de::Error::custom)
    }
}

/// `janitor::vcs::VcsType`: exactly "bzr" or "git".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VcsType {
    Bzr,
    Git,
}

impl<'de> Deserialize<'de> for VcsType {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match String::deserialize(d)?.as_str() {
            "bzr" => Ok(VcsType::Bzr),
            "git" => Ok(VcsType::Git),
            other => Err(serde::de::Error::custom(format!(
                "Unknown VCS type: {other}"
            ))),
        }
    }
}

type RevisionId = String;

#[derive(Debug, Deserialize)]
pub struct Codemod {
    pub command: String,
    pub environment: HashMap<String, String>,
}

#[derive(Debug, Deserialize)]
pub struct Build {
    pub target: String,
    pub config: serde_json::Value,
    pub environment: Option<HashMap<String, String>>,
}

#[derive(Debug, Deserialize)]
pub struct Branch {
    pub cached_url: Option<WireUrl>,
    pub vcs_type: VcsType,
    pub url: Option<WireUrl>,
    pub subpath: PathBuf,
    pub additional_colocated_branches: Option<Vec<String>>,
    #[serde(rename = "default-empty")]
    pub default_empty: bool,
}

#[derive(Debug, Deserialize)]
pub struct TargetRepository {
    pub url: WireUrl,
}

#[derive(Debug, Deserialize)]
pub struct ResumeBranch {
    pub result: serde_json::Value,
    pub branch_url: WireUrl,
    pub branches: Vec<(String, String, Option<RevisionId>, Option<RevisionId>)>,
}

#[derive(Debug, Deserialize)]
pub struct Assignment {
    pub id: String,
    pub queue_id: u64,
    pub campaign: String,
    pub codebase: String,
    #[serde(rename = "force-build")]
    pub force_build: bool,
    pub branch: Branch,
    pub resume: Option<ResumeBranch>,
    pub target_repository: TargetRepository,
    #[serde(rename = "skip-setup-validation")]
    pub skip_setup_validation: bool,
    pub codemod: Codemod,
    pub env: HashMap<String, String>,
    pub build: Build,
}

/// What the worker reads `build.config` as for a generic build.
#[derive(Debug, Deserialize)]
pub struct GenericBuildConfig {
    pub chroot: Option<String>,
    pub dep_server_url: Option<WireUrl>,
}
