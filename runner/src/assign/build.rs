//! Building the assignment for a claimed item: branch, resume, config
//! (§4.3–§4.6).

use super::*;

/// Open the branch, find a resume, build the config (§4.3–§4.6) for the
/// claimed item.
pub(super) async fn build_assignment(
    app: &Arc<App>,
    opener: &dyn BranchOpener,
    mode: Mode,
    mut conn: sqlx::pool::PoolConnection<sqlx::Postgres>,
    item: db::queue::NextItem,
    campaign: &crate::config::Campaign,
    mut run: ActiveRun,
) -> Result<Assignment, AssignError> {
    let builder = builder_for(app, campaign)?;
    let db_vcs_type = run
        .vcs_info
        .get("vcs_type")
        .and_then(Value::as_str)
        .map(str::to_string);

    let refresh = item.refresh.unwrap_or(false);
    let mut colocated: Option<Vec<String>> = None;
    let mut resume_branch: Option<vcs::ResumeBranch> = None;
    let vcs_type: Option<String>;
    match run
        .vcs_info
        .get("branch_url")
        .and_then(Value::as_str)
        .map(str::to_string)
    {
        Some(url) => match opener.open(&url, db_vcs_type.as_deref()).await {
            Ok(branch) => {
                run.vcs_info
                    .insert("branch_url".into(), str_value(branch.full_url()));
                colocated = Some(match builder {
                    Builder::Debian { .. } => vcs::debian_colocated_branches(&branch),
                    Builder::Generic { .. } => Vec::new(),
                });
                vcs_type = Some(branch.vcs_type.clone());
                if !refresh {
                    let names = crate::forge::candidate_names(
                        campaign.branch_name.as_deref(),
                        &item.codebase,
                    );
                    match opener.forge_resume(&branch, &names).await? {
                        vcs::ForgeResume::None => {}
                        vcs::ForgeResume::Found(b) => resume_branch = Some(b),
                        vcs::ForgeResume::RateLimited { host, reason } => {
                            state::rate_limit(app, &host, None).await?;
                            abort(app, &run, "resume-rate-limited", &reason).await?;
                            return Err(AssignError::RateLimited);
                        }
                    }
                }
            }
            Err(vcs::OpenError::UnsupportedVcs(t)) => {
                return Err(anyhow::anyhow!("unsupported vcs type {t}").into());
            }
            Err(e) => {
                tracing::debug!(%url, error = %e, "error opening branch");
                vcs_type = db_vcs_type.clone();
            }
        },
        None => vcs_type = Some(db_vcs_type.clone().unwrap_or_else(|| "git".into())),
    }
    let vcs_type = vcs_type.map(|t| t.to_lowercase());
    let managers = managers(app)?;

    // §4.4: without a forge resume branch, the store's `<campaign>/main`.
    if resume_branch.is_none() && !refresh {
        if let Some(t) = vcs_type.as_deref() {
            match manager_for(&managers, t) {
                None => tracing::warn!(vcs_type = t, "no public VCS manager"),
                Some(manager) => {
                    let branch = format!("{}/main", campaign.name.as_deref().unwrap_or_default());
                    resume_branch = tokio::time::timeout(
                        vcs::STORE_TIMEOUT,
                        manager.branch_tip(&item.codebase, &branch, opener),
                    )
                    .await
                    .ok()
                    .flatten();
                }
            }
        }
    }

    // §4.5: a resume needs a successful, unrejected run at the branch's tip.
    let mut resume: Option<Value> = None;
    if let Some(b) = &resume_branch {
        if let Some(r) = db::runs::resume_run(&mut conn, &item.campaign, &b.revision).await? {
            if r.publish_status != "rejected" {
                // Upstream refuses to hand out credentials-bearing URLs (QI-5: a 500).
                if b.url.starts_with("git+ssh:") || b.url.starts_with("bzr+ssh:") {
                    return Err(anyhow::anyhow!("resume branch {} is authenticated", b.url).into());
                }
                run.resume_from = Some(r.id.clone());
                resume = Some(resume_json(&r, &b.url));
            }
        }
    }

    let environment = build_env(&builder)?;
    let config = build_config(app, &mut conn, &builder, campaign, &item).await?;
    drop(conn);

    state::update(app, &run).await?;

    let (cached_url, target_url) = match vcs_type.as_deref().and_then(|t| manager_for(&managers, t))
    {
        None => (None, None),
        Some(m) => (
            Some(m.branch_url(&item.codebase, &cache_branch_name(&builder)?)),
            Some(
                m.repository_url(&item.codebase)
                    .map_err(anyhow::Error::from)?,
            ),
        ),
    };

    let mut env = environment.clone();
    if let Some(committer) = non_empty(&app.config.committer) {
        env.extend(committer_env(committer));
    }
    let (extra_env, command) =
        splitout_env(&run.command).map_err(|e| anyhow::anyhow!("invalid command: {e}"))?;
    for (k, v) in extra_env {
        env.insert(k, str_value(v));
    }

    let assignment = Assignment {
        id: run.log_id.clone(),
        description: format!("{} on {}", item.campaign, item.codebase),
        queue_id: run.queue_id,
        branch: BranchSection {
            default_empty: campaign.default_empty,
            url: run
                .vcs_info
                .get("branch_url")
                .and_then(Value::as_str)
                .map(str::to_string),
            subpath: run
                .vcs_info
                .get("subpath")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            vcs_type: db_vcs_type.clone(),
            cached_url,
            additional_colocated_branches: colocated,
        },
        resume,
        build: BuildSection {
            target: builder.kind(),
            environment,
            config,
        },
        command: command.clone(),
        codebase: item.codebase.clone(),
        codemod: Codemod {
            command,
            environment: Map::new(),
        },
        env,
        campaign: item.campaign.clone(),
        force_build: campaign.force_build,
        skip_setup_validation: campaign.skip_setup_validation,
        target_repository: TargetRepository {
            url: target_url,
            vcs_type: db_vcs_type,
        },
    };
    if mode == Mode::Peek {
        state::unclaim_run(app, &run).await?;
    }
    Ok(assignment)
}

/// ResumeInfo JSON (data-types.md §8).
pub(super) fn resume_json(r: &db::runs::ResumeRun, branch_url: &str) -> Value {
    let branches: Vec<Value> = r
        .branches
        .iter()
        .map(|(role, remote, base, rev)| {
            let text = |s: &Option<String>| {
                s.as_deref()
                    .filter(|s| !s.is_empty())
                    .map_or(Value::Null, str_value)
            };
            Value::Array(vec![
                str_value(role.clone()),
                remote.clone().map_or(Value::Null, Value::String),
                text(base),
                text(rev),
            ])
        })
        .collect();
    let mut m = Map::new();
    m.insert("run_id".into(), str_value(r.id.clone()));
    m.insert("result".into(), r.result.clone().unwrap_or(Value::Null));
    m.insert("branch_url".into(), str_value(branch_url));
    m.insert("branches".into(), Value::Array(branches));
    Value::Object(m)
}
