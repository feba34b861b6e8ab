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
    let claimed = run.clone();
    let db_vcs_type = run
        .vcs_info
        .get("vcs_type")
        .and_then(Value::as_str)
        .map(str::to_string);

    let refresh = item.refresh.unwrap_or(false);
    let Opened {
        vcs_type,
        colocated,
        mut resume_branch,
    } = open_branch(
        app,
        opener,
        &builder,
        campaign,
        &item,
        &mut run,
        &db_vcs_type,
    )
    .await?;
    let vcs_type = vcs_type.map(|t| t.to_lowercase());
    let managers = &app.vcs_managers;

    // §4.4: without a forge resume branch, the store's `<campaign>/main`.
    if resume_branch.is_none() && !refresh {
        resume_branch =
            store_resume_branch(managers, vcs_type.as_deref(), campaign, &item, opener).await;
    }

    let resume = match &resume_branch {
        Some(b) => resume_at(&mut conn, &item, b, &mut run).await?,
        None => None,
    };

    let environment = build_env(&builder)?;
    let config = build_config(app, &mut conn, &builder, campaign, &item).await?;
    drop(conn);

    // §4.7 writes the run again to keep what opening the branch and the
    // resume look-up changed (the normalised URL, `resume_from`). A run
    // still equal to the one claimed (upstream's equality, which leaves out
    // `current_duration`: data-types.md §3.3) is not written again: a Redis
    // round trip fewer, and the stored `current_duration` stays the claim's,
    // as QH-9 describes it ("when the run was last written").
    if run != claimed {
        state::update(&app.runs, &run).await?;
    }

    let (cached_url, target_url) = store_urls(managers, vcs_type.as_deref(), &item, &builder)?;

    let (env, command) = worker_env(app, &environment, &run.command)?;

    let assignment = Assignment {
        id: run.log_id.clone(),
        description: format!("{} on {}", item.campaign, item.codebase),
        queue_id: run.queue_id,
        branch: branch_section(&run, campaign, db_vcs_type.clone(), cached_url, colocated),
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
        state::unclaim_run(&app.runs, &run).await?;
    }
    Ok(assignment)
}

/// `cached_url` and `target_repository.url`: the codebase in the public VCS
/// store of the branch's type, when there is one (§4.6).
fn store_urls(
    managers: &[(String, VcsManager)],
    vcs_type: Option<&str>,
    item: &db::queue::NextItem,
    builder: &Builder<'_>,
) -> Result<(Option<String>, Option<String>), AssignError> {
    let Some(m) = vcs_type.and_then(|t| manager_for(managers, t)) else {
        return Ok((None, None));
    };
    let cached = m.branch_url(&item.codebase, &cache_branch_name(builder)?);
    let target = m
        .repository_url(&item.codebase)
        .map_err(anyhow::Error::from)?;
    Ok((Some(cached), Some(target)))
}

/// The assignment's `branch` section, from the run's VCS info (§4.6).
fn branch_section(
    run: &ActiveRun,
    campaign: &crate::config::Campaign,
    vcs_type: Option<String>,
    cached_url: Option<String>,
    colocated: Option<Vec<String>>,
) -> BranchSection {
    let info = |key: &str| run.vcs_info.get(key).and_then(Value::as_str);
    BranchSection {
        default_empty: campaign.default_empty,
        url: info("branch_url").map(str::to_string),
        subpath: info("subpath").unwrap_or_default().to_string(),
        vcs_type,
        cached_url,
        additional_colocated_branches: colocated,
    }
}

/// What opening the codebase's branch gave (§4.3).
struct Opened {
    vcs_type: Option<String>,
    colocated: Option<Vec<String>>,
    resume_branch: Option<vcs::ResumeBranch>,
}

/// Open the item's branch (its URL in `run` becomes the full URL) and, unless
/// refreshing, look for the bot's branch on the forge. A forge that
/// rate-limits aborts the run.
async fn open_branch(
    app: &Arc<App>,
    opener: &dyn BranchOpener,
    builder: &Builder<'_>,
    campaign: &crate::config::Campaign,
    item: &db::queue::NextItem,
    run: &mut ActiveRun,
    db_vcs_type: &Option<String>,
) -> Result<Opened, AssignError> {
    let refresh = item.refresh.unwrap_or(false);
    let url = run
        .vcs_info
        .get("branch_url")
        .and_then(Value::as_str)
        .map(str::to_string);
    let Some(url) = url else {
        return Ok(Opened {
            vcs_type: Some(db_vcs_type.clone().unwrap_or_else(|| "git".into())),
            colocated: None,
            resume_branch: None,
        });
    };
    let branch = match opener.open(&url, db_vcs_type.as_deref()).await {
        Ok(branch) => branch,
        Err(vcs::OpenError::UnsupportedVcs(t)) => {
            return Err(anyhow::anyhow!("unsupported vcs type {t}").into());
        }
        Err(e) => {
            tracing::debug!(%url, error = %e, "error opening branch");
            return Ok(Opened {
                vcs_type: db_vcs_type.clone(),
                colocated: None,
                resume_branch: None,
            });
        }
    };
    run.vcs_info
        .insert("branch_url".into(), str_value(branch.full_url()));
    let colocated = Some(match builder {
        Builder::Debian { .. } => vcs::debian_colocated_branches(&branch),
        Builder::Generic { .. } => Vec::new(),
    });
    let mut resume_branch = None;
    if !refresh {
        let names =
            crate::vcs::forge::candidate_names(campaign.branch_name.as_deref(), &item.codebase);
        match opener.forge_resume(&branch, &names).await? {
            vcs::ForgeResume::None => {}
            vcs::ForgeResume::Found(b) => resume_branch = Some(b),
            vcs::ForgeResume::RateLimited { host, reason } => {
                state::rate_limit(&app.runs, &host, None).await?;
                abort(app, run, "resume-rate-limited", &reason).await?;
                return Err(AssignError::RateLimited);
            }
        }
    }
    Ok(Opened {
        vcs_type: Some(branch.vcs_type.clone()),
        colocated,
        resume_branch,
    })
}

/// The tip of `<campaign>/main` in the public VCS store, if it has one.
async fn store_resume_branch(
    managers: &[(String, VcsManager)],
    vcs_type: Option<&str>,
    campaign: &crate::config::Campaign,
    item: &db::queue::NextItem,
    opener: &dyn BranchOpener,
) -> Option<vcs::ResumeBranch> {
    let t = vcs_type?;
    let Some(manager) = manager_for(managers, t) else {
        tracing::warn!(vcs_type = t, "no public VCS manager");
        return None;
    };
    let branch = format!("{}/main", campaign.name.as_deref().unwrap_or_default());
    tokio::time::timeout(
        vcs::STORE_TIMEOUT,
        manager.branch_tip(&item.codebase, &branch, opener),
    )
    .await
    .ok()
    .flatten()
}

/// §4.5: a resume needs a successful, unrejected run at the branch's tip;
/// `run` then records what it resumes from.
async fn resume_at(
    conn: &mut sqlx::PgConnection,
    item: &db::queue::NextItem,
    b: &vcs::ResumeBranch,
    run: &mut ActiveRun,
) -> Result<Option<Value>, AssignError> {
    let Some(r) = db::runs::resume_run(conn, &item.campaign, &b.revision).await? else {
        return Ok(None);
    };
    if r.publish_status == "rejected" {
        return Ok(None);
    }
    // Upstream refuses to hand out credentials-bearing URLs (QI-5: a 500).
    if b.url.starts_with("git+ssh:") || b.url.starts_with("bzr+ssh:") {
        return Err(anyhow::anyhow!("resume branch {} is authenticated", b.url).into());
    }
    run.resume_from = Some(r.id.clone());
    Ok(Some(resume_json(&r, &b.url)))
}

/// The worker's environment (build environment, committer, the command's
/// leading `KEY=VALUE` words) and the command without them.
fn worker_env(
    app: &App,
    environment: &Map<String, Value>,
    command: &str,
) -> Result<(Map<String, Value>, String), AssignError> {
    let mut env = environment.clone();
    if let Some(committer) = non_empty(&app.config.committer) {
        env.extend(committer_env(committer));
    }
    let (extra_env, command) =
        splitout_env(command).map_err(|e| anyhow::anyhow!("invalid command: {e}"))?;
    for (k, v) in extra_env {
        env.insert(k, str_value(v));
    }
    Ok((env, command))
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
