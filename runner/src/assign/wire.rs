//! The assignment document handed to the worker (wire types).

use super::*;

/// The Assignment (data-types.md §9), fields in upstream order.
#[derive(Debug, Serialize)]
pub struct Assignment {
    pub id: String,
    pub description: String,
    pub queue_id: i64,
    pub branch: BranchSection,
    pub resume: Option<Value>,
    pub build: BuildSection,
    pub command: String,
    pub codebase: String,
    pub codemod: Codemod,
    pub env: Map<String, Value>,
    pub campaign: String,
    #[serde(rename = "force-build")]
    pub force_build: bool,
    #[serde(rename = "skip-setup-validation")]
    pub skip_setup_validation: bool,
    pub target_repository: TargetRepository,
}

#[derive(Debug, Serialize)]
pub struct BranchSection {
    #[serde(rename = "default-empty")]
    pub default_empty: bool,
    pub url: Option<String>,
    /// `""` when the codebase has none: the worker needs a string (divergence-policy §2).
    pub subpath: String,
    pub vcs_type: Option<String>,
    pub cached_url: Option<String>,
    /// Branch names (sorted), or null when the branch was not opened
    /// (divergence-policy §2: upstream sends a name → role map).
    pub additional_colocated_branches: Option<Vec<String>>,
}

#[derive(Debug, Serialize)]
pub struct BuildSection {
    pub target: &'static str,
    pub environment: Map<String, Value>,
    pub config: Map<String, Value>,
}

#[derive(Debug, Serialize)]
pub struct Codemod {
    pub command: String,
    pub environment: Map<String, Value>,
}

#[derive(Debug, Serialize)]
pub struct TargetRepository {
    pub url: Option<String>,
    pub vcs_type: Option<String>,
}
