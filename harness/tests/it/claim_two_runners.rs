//! The claim is atomic across runner processes: 50 concurrent assigns spread
//! over TWO `janitor-runner` processes (separate pools) sharing one
//! PostgreSQL and one Redis never hand out a queue item twice.

use janitor_harness::services::TestServices;
use std::collections::HashSet;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const ITEMS: u64 = 20;
const ASSIGNS: usize = 50;

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn start_runner(conf: &std::path::Path, vcs: &std::path::Path) -> (Proc, String) {
    start_runner_with_public(conf, vcs, 0).await
}

async fn start_runner_with_public(
    conf: &std::path::Path,
    vcs: &std::path::Path,
    public_port: u16,
) -> (Proc, String) {
    let port = janitor_harness::services::process::free_port().unwrap();
    let child = Command::new(janitor_harness::testing::runner_binary())
        .args([
            "--config",
            conf.to_str().unwrap(),
            "--port",
            &port.to_string(),
            "--public-port",
            &public_port.to_string(),
        ])
        .args([
            "--listen-address",
            "127.0.0.1",
            "--public-vcs-location",
            vcs.to_str().unwrap(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while janitor_harness::testing::http_client()
        .get(format!("{url}/health"))
        .send()
        .await
        .is_err()
    {
        assert!(Instant::now() < deadline, "runner did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (Proc(child), url)
}

/// janitor.conf for runners on `services`, logs and artifacts under `dir`.
fn write_conf(services: &TestServices, dir: &std::path::Path) -> std::path::PathBuf {
    for sub in ["vcs/git", "vcs/bzr", "logs", "artifacts"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
    }
    let conf = dir.join("janitor.conf");
    std::fs::write(
        &conf,
        format!(
            "database_location: {:?}\nredis_location: {:?}\nlogs_location: {:?}\nartifact_location: {:?}\n\
             committer: \"Janitor Bot <janitor@example.com>\"\n\
             campaign {{\n  name: \"scratch\"\n  default_empty: true\n  generic_build {{\n    chroot: \"x\"\n  }}\n}}\n",
            services.db.url,
            services.redis.url,
            dir.join("logs").display().to_string(),
            dir.join("artifacts").display().to_string(),
        ),
    )
    .unwrap();
    conf
}

/// `janitor-harness load --worker-like` over two runner processes, one of
/// them killed (SIGKILL) mid-load: the workers move to the other runner,
/// every result is kept (the load tool fails on a 404, a run it had to give
/// up or an unexpected answer) and the database shows no item handed out
/// twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runner_killed_under_worker_load_loses_nothing() {
    let services = TestServices::start().await.unwrap();
    janitor_harness::load::seed(&services.db.url, 5000, "scratch")
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let conf = write_conf(&services, dir.path());
    let vcs = dir.path().join("vcs");
    let (pa, pb) = (
        janitor_harness::services::process::free_port().unwrap(),
        janitor_harness::services::process::free_port().unwrap(),
    );
    let (_a, _) = start_runner_with_public(&conf, &vcs, pa).await;
    let (mut b, _) = start_runner_with_public(&conf, &vcs, pb).await;
    let load = tokio::process::Command::new(env!("CARGO_BIN_EXE_janitor-harness"))
        .args(["load", "--worker-like", "--workers", "8", "--duration", "4"])
        .args(["--user", "load", "--password", "load"])
        .arg("--url")
        .arg(format!("http://127.0.0.1:{pa},http://127.0.0.1:{pb}"))
        .arg("--check-db")
        .arg(&services.db.url)
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    b.0.kill().unwrap();
    let out = tokio::time::timeout(Duration::from_secs(120), load.wait_with_output())
        .await
        .expect("the load tool stops by itself")
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    println!("{report:#}");
    assert!(out.status.success(), "{report:#}");
    assert!(report["finished"].as_u64().unwrap() > 50, "{report:#}");
    assert_eq!(report["db_double_handouts"]["items"], 0);
    assert!(
        report["retried_errors"].as_u64().unwrap() > 0,
        "the kill was not seen"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_runner_processes_never_hand_out_an_item_twice() {
    let services = TestServices::start().await.unwrap();
    janitor_harness::load::seed(&services.db.url, ITEMS, "scratch")
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let conf = write_conf(&services, dir.path());
    let vcs = dir.path().join("vcs");
    let (_a, url_a) = start_runner(&conf, &vcs).await;
    let (_b, url_b) = start_runner(&conf, &vcs).await;

    let client = janitor_harness::testing::http_client();
    let mut tasks = Vec::new();
    for i in 0..ASSIGNS {
        let url = if i % 2 == 0 {
            url_a.clone()
        } else {
            url_b.clone()
        };
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            let resp = client
                .post(format!("{url}/active-runs"))
                .body(r#"{"worker": null}"#)
                .send()
                .await
                .unwrap();
            let status = resp.status().as_u16();
            let body: serde_json::Value = resp.json().await.unwrap();
            (status, body)
        }));
    }
    let mut handed = Vec::new();
    let mut empty = 0;
    for t in tasks {
        let (status, body) = t.await.unwrap();
        match status {
            201 => handed.push(body["queue_id"].as_i64().unwrap()),
            503 => {
                assert_eq!(body, serde_json::json!({"reason": "queue empty"}));
                empty += 1;
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    let distinct: HashSet<i64> = handed.iter().copied().collect();
    assert_eq!(
        distinct.len(),
        handed.len(),
        "an item was handed out twice: {handed:?}"
    );
    assert_eq!(handed.len() as u64, ITEMS, "every item is handed out once");
    assert_eq!(empty, ASSIGNS - ITEMS as usize);
}
