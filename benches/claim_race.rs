//! Replays, step by step, the interleaving behind the double hand-out seen
//! under load (`cargo bench -p janitor-harness --bench claim_race`): worker
//! B selects queue item X, worker A is handed X and finishes it (queue row
//! deleted, claim released), then B claims X. The claim is atomic in Redis,
//! but it must be followed by a check that X is still queued, or B is handed
//! a finished item. Exits non-zero if B would be handed X.

use janitor_harness::testing::TestRunner;
use janitor_runner::db::queue::{self, NextItemFilter};
use janitor_runner::state;
use janitor_runner::types::{ActiveRun, Backchannel};
use serde_json::Value;

const CONFIG: &str = r#"
campaign {
  name: "lintian-fixes"
  command: "lintian-brush"
  default_empty: true
  generic_build {
  }
}
"#;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let t = TestRunner::start_with(CONFIG, |s, _| s.public_port = None).await?;
    janitor_harness::load::seed(&t.services.db.url, 1, "lintian-fixes").await?;
    let runner = t.runner;
    let app = runner.app.clone();
    let http = janitor_runner::tls::http_client();
    let base = format!("http://{}", runner.admin_addr);

    // B: what assign::next_item does before its claim.
    let claims: Vec<i32> = state::assigned_queue_items(&app.runs)
        .await?
        .into_keys()
        .filter_map(|k| i32::try_from(k).ok())
        .collect();
    let mut conn = app.db.acquire().await?;
    let filter = NextItemFilter {
        assigned: &claims,
        ..Default::default()
    };
    let x = queue::next_item(&mut conn, &filter)
        .await?
        .ok_or_else(|| anyhow::anyhow!("queue empty"))?;
    println!("B selected queue item {}", x.id);

    // A: a whole cycle on the same item, through HTTP.
    let a: Value = http
        .post(format!("{base}/active-runs"))
        .header("content-type", "application/json")
        .body(r#"{"worker": "a", "backchannel": null}"#)
        .send()
        .await?
        .json()
        .await?;
    println!("A was handed queue item {}", a["queue_id"]);
    let (ct, body) = janitor_harness::load::finish_body();
    let fin = http
        .post(format!(
            "{base}/active-runs/{}/finish",
            a["id"].as_str().unwrap_or_default()
        ))
        .header("content-type", ct)
        .body(body)
        .send()
        .await?;
    println!("A finished: {}", fin.status());
    runner.background_idle().await;

    // B: the atomic claim.
    let run = ActiveRun {
        queue_id: i64::from(x.id),
        log_id: uuid::Uuid::new_v4().to_string(),
        codebase: Some(x.codebase.clone()),
        change_set: None,
        campaign: x.campaign.clone(),
        command: "true".into(),
        estimated_duration: None,
        start_time: app.clock.now_naive(),
        worker_name: Some("b".into()),
        worker_link: None,
        vcs_info: serde_json::Map::new(),
        backchannel: Backchannel::None,
        instigated_context: Value::Null,
        resume_from: None,
    };
    // As assign::next_item does: claim, then check the item is still queued
    // before announcing the run; a stale claim is withdrawn.
    let claimed = state::claim(&app.runs, &run).await.is_ok();
    let still_queued = queue::exists(&mut conn, &x).await?;
    let handed_to_b = claimed && still_queued;
    if claimed && !still_queued {
        state::withdraw(&app.runs, &run).await?;
    }
    println!(
        "B's claim on {} succeeded: {claimed}; item still queued: {still_queued}",
        x.id
    );
    drop(conn);
    runner.shutdown().await?;
    if handed_to_b && a["queue_id"].as_i64() == Some(i64::from(x.id)) {
        println!(
            "DOUBLE HAND-OUT: item {} handed to A (finished) and to B",
            x.id
        );
        std::process::exit(1);
    }
    println!("no double hand-out");
    Ok(())
}
