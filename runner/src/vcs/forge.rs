//! The forge-based resume branch (runner-internals.md §6.6): the bot's own
//! branch of a campaign with an open merge proposal against the codebase's
//! main branch, found through Breezy's forge support (GitHub, GitLab, …).
//!
//! Runs on a blocking thread (Breezy is synchronous Python).

use breezyshim::branch::{Branch, GenericBranch};
use breezyshim::error::Error as BrzError;
use breezyshim::forge::{get_forge, MergeProposalStatus};

use super::{ForgeResume, ResumeBranch};

/// Derived-branch URL schemes in order of preference, as upstream asks.
const PREFERRED_SCHEMES: &[&str] = &["https", "git", "bzr"];

/// Candidate names of the bot's branch, in the order they are tried. A
/// campaign without `branch_name` yields the literal `None`, as upstream
/// formats it (QI-10).
pub fn candidate_names(branch_name: Option<&str>, codebase: &str) -> Vec<String> {
    let b = branch_name.unwrap_or("None");
    vec![
        b.to_string(),
        format!("{b}/main"),
        format!("{b}/main/{codebase}"),
    ]
}

/// How an error of the forge conversation ends the lookup.
enum Verdict {
    /// No resume branch (and no error for the assignment).
    NoResume,
    RateLimited(ForgeResume),
    Fail(anyhow::Error),
}

fn rate_limited(e: &BrzError) -> Option<ForgeResume> {
    match e {
        BrzError::UnexpectedHttpStatus { url, code: 429, .. } => Some(ForgeResume::RateLimited {
            host: url.host_str().unwrap_or_default().to_string(),
            reason: format!("{e}"),
        }),
        _ => None,
    }
}

/// Determining the forge: unsupported forges, missing credentials and
/// network failures mean no resume; other unexpected HTTP answers fail.
fn forge_error(e: BrzError) -> Verdict {
    if let Some(r) = rate_limited(&e) {
        return Verdict::RateLimited(r);
    }
    match e {
        BrzError::UnsupportedForge(_)
        | BrzError::ForgeLoginRequired
        | BrzError::ConnectionError(_)
        | BrzError::Socket(..) => Verdict::NoResume,
        BrzError::Other(ref py) if is_ssl_error(py) => Verdict::NoResume,
        e => Verdict::Fail(anyhow::anyhow!("determining the forge: {e:?}")),
    }
}

/// Asking the forge about one candidate: a missing project, a permission
/// problem, an unusable redirect or any other HTTP status mean no resume.
fn lookup_error(e: BrzError) -> Verdict {
    if let Some(r) = rate_limited(&e) {
        return Verdict::RateLimited(r);
    }
    match e {
        BrzError::NoSuchProject(_)
        | BrzError::PermissionDenied(..)
        | BrzError::UnusableRedirect(..)
        | BrzError::UnexpectedHttpStatus { .. } => Verdict::NoResume,
        e => Verdict::Fail(anyhow::anyhow!("finding the resume branch: {e:?}")),
    }
}

fn is_ssl_error(e: &pyo3::PyErr) -> bool {
    pyo3::Python::attach(|py| {
        let name = e.get_type(py).to_string();
        name.contains("SSL")
    })
}

fn verdict(v: Verdict) -> anyhow::Result<ForgeResume> {
    match v {
        Verdict::NoResume => Ok(ForgeResume::None),
        Verdict::RateLimited(r) => Ok(r),
        Verdict::Fail(e) => Err(e),
    }
}

/// §6.6 for the opened main branch: the first candidate name whose derived
/// branch has an open merge proposal against `main` wins.
pub fn find_resume(main: &GenericBranch, names: &[String]) -> anyhow::Result<ForgeResume> {
    let forge = match get_forge(main) {
        Ok(f) => f,
        Err(e) => return verdict(forge_error(e)),
    };
    for name in names {
        let derived =
            match forge.get_derived_branch_as_generic(main, name, None, Some(PREFERRED_SCHEMES)) {
                Ok(b) => b,
                Err(BrzError::NotBranchError(..)) => continue,
                Err(e) => return verdict(lookup_error(e)),
            };
        let proposals = match forge.iter_proposals(&derived, main, MergeProposalStatus::All) {
            Ok(p) => p,
            Err(e) => return verdict(lookup_error(e)),
        };
        let mut open = false;
        for mp in proposals {
            let merged = match mp.is_merged() {
                Ok(m) => m,
                Err(e) => return verdict(lookup_error(e)),
            };
            let closed = match mp.is_closed() {
                Ok(c) => c,
                Err(e) => return verdict(lookup_error(e)),
            };
            open |= !merged && !closed;
        }
        if open {
            return Ok(ForgeResume::Found(ResumeBranch {
                revision: String::from_utf8_lossy(derived.last_revision().as_bytes()).into_owned(),
                url: derived.get_user_url().to_string(),
            }));
        }
    }
    Ok(ForgeResume::None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidates_are_tried_from_the_plain_name_to_the_codebase_one() {
        assert_eq!(
            candidate_names(Some("lintian-fixes"), "foo"),
            [
                "lintian-fixes",
                "lintian-fixes/main",
                "lintian-fixes/main/foo"
            ]
        );
        assert_eq!(candidate_names(None, "foo")[0], "None");
    }
}
