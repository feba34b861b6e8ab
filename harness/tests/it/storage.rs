//! Log and artifact storage through real stores: the same finish stores the
//! same objects on the filesystem and in GCS (fake-gcs-server); a GCS that
//! answers 503 sends logs and artifacts to the backup directory, and the
//! re-upload moves them to the primary and empties the backup. Logs in S3
//! (moto) likewise.

use janitor_harness::replay::{run_with, Observed, StorageKind};
use janitor_harness::scenario::Scenario;
use janitor_harness::services::TestServices;
use janitor_harness::target::TargetSpec;
use janitor_harness::testing;
use janitor_runner::server::Runner;
use janitor_runner::settings::Settings;
use janitor_runner::state;
use janitor_runner::storage::{artifacts, backup, Storage};
use janitor_runner::types::{ActiveRun, Backchannel};
use serde_json::json;
use sqlx::{Connection, PgConnection};
use std::io::Read;
use std::path::Path;
use wiremock::matchers::any;
use wiremock::{Mock, MockServer, ResponseTemplate};

/// The scenario replayed in process on the filesystem stores and on `other`.
async fn on_disk_and(scenario: &Scenario, other: StorageKind) -> (Observed, Observed) {
    let run = |kind| run_with(scenario, &TargetSpec::InProcess, kind);
    (
        run(StorageKind::Filesystem).await.unwrap(),
        run(other).await.unwrap(),
    )
}

fn golden(name: &str) -> Scenario {
    Scenario::load(&janitor_harness::golden_dir().join(format!("{name}.json"))).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_debian_finish_stores_the_same_objects_on_disk_and_in_gcs() {
    let scenario = golden("finish-debian-artifacts");
    let (fs, gcs) = on_disk_and(&scenario, StorageKind::Gcs).await;

    let files = &gcs.doc["files_after"];
    let names: Vec<&String> = files.as_object().unwrap().keys().collect();
    assert!(
        names.iter().any(|n| n.starts_with("logs/debpkg/"))
            && names.iter().any(|n| n.ends_with("_all.deb")),
        "{names:?}"
    );
    // Same names, same (decompressed) contents; and both as recorded.
    assert_eq!(files, &fs.doc["files_after"]);
    assert_eq!(files, scenario.files_after.as_ref().unwrap());
    // Same gzip mtime (the result's finish time), present for every log.
    assert_eq!(gcs.log_mtimes, fs.log_mtimes);
    let mtimes = gcs.log_mtimes.as_object().unwrap();
    assert!(!mtimes.is_empty());
    assert!(
        mtimes.values().all(|m| m.as_u64().unwrap_or(0) > 0),
        "{mtimes:?}"
    );
    // The whole replay (responses, rows, Redis) is unchanged by the store.
    let mut a = gcs.doc.clone();
    let mut b = fs.doc.clone();
    a.as_object_mut().unwrap().remove("files_after");
    b.as_object_mut().unwrap().remove("files_after");
    assert_eq!(a, b);
}

/// A missing artifact: GCS keeps the files named before it, as the disk
/// does, and the run's stored description names no server path.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_artifact_leaves_the_same_run_in_gcs_as_on_disk() {
    let scenario = golden("finish-missing-artifact-other");
    let (fs, gcs) = on_disk_and(&scenario, StorageKind::Gcs).await;
    assert_eq!(gcs.doc["files_after"], fs.doc["files_after"]);
    assert_eq!(gcs.doc["db_after"], fs.doc["db_after"]);
    assert_eq!(
        gcs.doc["db_after"]["run"][0]["description"],
        "No such file or directory (os error 2)"
    );
}

/// A finished generic run with one log, `worker.log`.
fn finish_body() -> (String, Vec<u8>) {
    let result = json!({
        "code": "success",
        "start_time": "2020-02-02T10:00:00",
        "finish_time": "2020-02-02T10:10:30",
    });
    janitor_harness::testing::finish_body(&result, &[("worker.log", b"worker says hi\n")])
}

/// An active run of a new codebase named `codebase`.
async fn register_run(runner: &Runner, db_url: &str, codebase: &str) -> ActiveRun {
    let mut conn = PgConnection::connect(db_url).await.unwrap();
    let queue_id = testing::seed::queued(&mut conn, codebase, "scratch", "true")
        .await
        .unwrap();
    let run = testing::active_run(
        queue_id,
        codebase,
        "scratch",
        "true",
        chrono::Utc::now().naive_utc(),
        Backchannel::None,
    );
    state::register(&runner.app.runs, &run).await.unwrap();
    run
}

/// Finishes `run` with [`finish_body`]; the runner must answer 201.
async fn finish(runner: &Runner, run: &ActiveRun) {
    let (ct, body) = finish_body();
    let resp = janitor_harness::testing::http_client()
        .post(format!(
            "http://{}/active-runs/{}/finish",
            runner.admin_addr, run.log_id
        ))
        .header("Content-Type", ct)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status().as_u16(),
        201,
        "{}",
        resp.text().await.unwrap()
    );
}

fn gcs_settings(services: &TestServices, emulator: &str, backup: &Path) -> Settings {
    let mut s = Settings::new(services.db.url.as_str(), services.redis.url.as_str());
    s.listen_address = "127.0.0.1".into();
    s.port = 0;
    s.public_port = None;
    s.logs_location = Some("gs://storage-logs".into());
    s.artifact_location = Some("gs://storage-artifacts".into());
    s.storage_emulator_host = Some(emulator.to_string());
    s.backup_directory = Some(backup.to_path_buf());
    s.watchdog = false;
    s.db_max_connections = 3;
    s
}

fn gunzip(raw: &[u8]) -> String {
    let mut text = String::new();
    flate2::read::GzDecoder::new(raw)
        .read_to_string(&mut text)
        .unwrap();
    text
}

/// Every file under `dir`, relative.
fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unavailable_gcs_fills_the_backup_and_the_reupload_empties_it() {
    // GCS is down: every call answers 503 (an external peer, so a mock).
    let down = MockServer::start().await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(503))
        .mount(&down)
        .await;
    let services = TestServices::start().await.unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let backup_dir = tmp.path().join("backup");
    std::fs::create_dir(&backup_dir).unwrap();

    let runner = Runner::start(
        gcs_settings(&services, &down.uri(), &backup_dir),
        janitor_runner::clock::system(),
    )
    .await
    .unwrap();
    let run = register_run(&runner, &services.db.url, "fin").await;
    finish(&runner, &run).await;
    assert_eq!(runner.app.metrics.primary_logfile_upload_failed.get(), 1);
    assert_eq!(runner.app.metrics.logfile_uploads.get(), 1);
    let backed_up = format!("logs/fin/{}/worker.log.gz", run.log_id);
    assert_eq!(files_under(&backup_dir), vec![backed_up.clone()]);

    // Artifacts too: the primary's error stands (QI-15), the backup has them.
    let art = tmp.path().join("upload");
    std::fs::create_dir(&art).unwrap();
    std::fs::write(art.join("p_1_all.deb"), "deb bytes").unwrap();
    let names = vec!["p_1_all.deb".to_string()];
    let stored = artifacts::store_with_backup(
        runner.app.storage.artifacts.as_ref(),
        runner.app.storage.backup_artifacts.as_deref(),
        &art,
        &run.log_id,
        &names,
    )
    .await;
    assert!(
        matches!(stored, Err(artifacts::ArtifactError::ServiceUnavailable)),
        "{stored:?}"
    );
    runner.shutdown().await.unwrap();
    assert_eq!(files_under(&backup_dir).len(), 2);

    // While GCS is still down, a pass stops at the first refusal and loses nothing.
    let settings = gcs_settings(&services, &down.uri(), &backup_dir);
    let storage = Storage::from_settings(&settings).await.unwrap();
    let report = backup::reupload(&storage).await;
    assert_eq!(
        (
            report.logs_moved,
            report.artifact_runs_moved,
            report.failures
        ),
        (0, 0, 1),
        "{report:?}"
    );
    assert_eq!(files_under(&backup_dir).len(), 2);

    // GCS is back (the emulator): the next pass moves both, then the backup is empty.
    let gcs = janitor_harness::services::gcs().await.unwrap();
    gcs.create_bucket("storage-logs").await.unwrap();
    gcs.create_bucket("storage-artifacts").await.unwrap();
    let settings = gcs_settings(&services, &gcs.endpoint, &backup_dir);
    let storage = Storage::from_settings(&settings).await.unwrap();
    let report = backup::reupload(&storage).await;
    assert_eq!(
        (
            report.logs_moved,
            report.artifact_runs_moved,
            report.failures
        ),
        (1, 1, 0),
        "{report:?}"
    );
    assert_eq!(files_under(&backup_dir), Vec::<String>::new());
    assert!(backup_dir.join("logs").is_dir() && backup_dir.join("artifacts").is_dir());

    let logs = gcs.objects("storage-logs").await.unwrap();
    assert_eq!(logs.len(), 1);
    assert_eq!(logs[0].0, format!("fin/{}/worker.log.gz", run.log_id));
    assert_eq!(gunzip(&logs[0].1), "worker says hi\n");
    // The finish time 2020-02-02T10:10:30Z, kept through the backup.
    assert_eq!(
        janitor_runner::storage::gcs::gzip_mtime(&logs[0].1),
        Some(1_580_638_230)
    );
    let arts = gcs.objects("storage-artifacts").await.unwrap();
    assert_eq!(
        arts,
        vec![(format!("{}/p_1_all.deb", run.log_id), b"deb bytes".to_vec())]
    );
}

/// Above the crate's 16 MiB resumable threshold, with the characters Debian
/// file names use: still one streamed upload, stored byte for byte.
#[tokio::test]
async fn a_large_artifact_arrives_whole() {
    use janitor_runner::storage::artifacts::ArtifactManager;
    use sha2::Digest;
    let gcs = janitor_harness::services::gcs().await.unwrap();
    gcs.create_bucket("large-artifacts").await.unwrap();
    let client = janitor_runner::storage::gcs::client(Some(&gcs.endpoint))
        .await
        .unwrap();
    let m = janitor_runner::storage::gcs::GcsArtifactManager::new(client, "large-artifacts");
    let tmp = tempfile::tempdir().unwrap();
    let name = "p_1.0-1~jan+1_amd64.deb";
    let data: Vec<u8> = (0..20 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(tmp.path().join(name), &data).unwrap();
    m.store_artifacts("r1", tmp.path(), &[name.to_string()])
        .await
        .unwrap();
    let objects = gcs.objects("large-artifacts").await.unwrap();
    assert_eq!(objects.len(), 1);
    assert_eq!(objects[0].0, format!("r1/{name}"));
    assert_eq!(
        sha2::Sha256::digest(&objects[0].1),
        sha2::Sha256::digest(&data)
    );
}

/// A 403 on upload (and on the read-back of upstream's equality check) is
/// "permission denied", which `import_log` answers with the dated name.
#[tokio::test]
async fn a_forbidden_log_upload_is_permission_denied() {
    use janitor_runner::storage::logs::{LogError, LogManager, LogSource};
    let server = MockServer::start().await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(403))
        .mount(&server)
        .await;
    let client = janitor_runner::storage::gcs::client(Some(&server.uri()))
        .await
        .unwrap();
    let m = janitor_runner::storage::gcs::GcsLogManager::new(client, "b");
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("build.log");
    std::fs::write(&src, "x").unwrap();
    let r = m
        .import_log("c", "r", "build.log", &LogSource::path(&src), 0)
        .await;
    assert!(matches!(r, Err(LogError::PermissionDenied(_))), "{r:?}");
    // A log held in memory (a small upload) goes the same way.
    let r = m
        .import_log("c", "r", "build.log", &LogSource::bytes(b"x"), 0)
        .await;
    assert!(matches!(r, Err(LogError::PermissionDenied(_))), "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_debian_finish_stores_the_same_logs_in_s3_as_on_disk() {
    let scenario = golden("finish-debian-artifacts");
    let (fs, s3) = on_disk_and(&scenario, StorageKind::S3).await;
    let names: Vec<&String> = s3.doc["files_after"].as_object().unwrap().keys().collect();
    assert!(
        names.iter().any(|n| n.starts_with("logs/debpkg/")),
        "{names:?}"
    );
    // The whole replay, stored files and log mtimes included, is unchanged.
    assert_eq!(s3.doc, fs.doc);
    assert_eq!(s3.log_mtimes, fs.log_mtimes);
    assert!(!s3.log_mtimes.as_object().unwrap().is_empty());
}

fn s3_settings(services: &TestServices, endpoint: &str, backup: &Path) -> Settings {
    let mut s = Settings::new(services.db.url.as_str(), services.redis.url.as_str());
    s.listen_address = "127.0.0.1".into();
    s.port = 0;
    s.public_port = None;
    s.logs_location = Some(endpoint.to_string());
    // Artifacts stay on disk: upstream has no S3 artifact store.
    s.artifact_location = Some(backup.with_extension("artifacts").display().to_string());
    s.s3_credentials = Some(janitor_harness::services::s3::credentials());
    s.backup_directory = Some(backup.to_path_buf());
    s.watchdog = false;
    s.db_max_connections = 3;
    s
}

/// A log stored in S3 (moto) as upstream stores it: its key, gzip with the
/// finish time, readable by anyone (`public-read`, the site reads logs
/// without credentials). Then the store goes down: the next log goes to the
/// backup; the store comes back: the re-upload moves it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_logs_are_public_and_survive_the_store_going_down() {
    use janitor_harness::services::s3::S3Server;
    use janitor_runner::storage::s3::BUCKET;
    let mut s3 = S3Server::start().await.unwrap();
    s3.create_bucket(BUCKET).await.unwrap();
    let services = TestServices::start().await.unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let backup_dir = tmp.path().join("backup");
    std::fs::create_dir(&backup_dir).unwrap();
    let runner = Runner::start(
        s3_settings(&services, &s3.endpoint, &backup_dir),
        janitor_runner::clock::system(),
    )
    .await
    .unwrap();

    let run = register_run(&runner, &services.db.url, "fin").await;
    finish(&runner, &run).await;
    let key = format!("logs/fin/{}/worker.log.gz", run.log_id);
    let objects = s3.objects(BUCKET).await.unwrap();
    assert_eq!(objects.iter().map(|o| &o.0).collect::<Vec<_>>(), vec![&key]);
    assert_eq!(gunzip(&objects[0].1), "worker says hi\n");
    assert_eq!(
        janitor_runner::storage::gcs::gzip_mtime(&objects[0].1),
        Some(1_580_638_230)
    );
    let acl = s3
        .client()
        .await
        .get_object_acl()
        .bucket(BUCKET)
        .key(&key)
        .send()
        .await
        .unwrap();
    assert!(
        acl.grants().iter().any(|g| {
            g.permission().map(|p| p.as_str()) == Some("READ")
                && g.grantee().and_then(|e| e.uri())
                    == Some("http://acs.amazonaws.com/groups/global/AllUsers")
        }),
        "{acl:?}"
    );
    // Upstream's readers fetch `<endpoint>/debian-janitor/<key>` anonymously.
    let public = janitor_harness::testing::http_client()
        .get(format!("{}/{BUCKET}/{key}", s3.endpoint))
        .send()
        .await
        .unwrap();
    assert_eq!(public.status().as_u16(), 200);
    assert_eq!(public.bytes().await.unwrap().to_vec(), objects[0].1);
    assert!(files_under(&backup_dir).is_empty());

    // The store goes down: the finish still succeeds, the log is backed up.
    let port: u16 = s3.endpoint.rsplit(':').next().unwrap().parse().unwrap();
    s3.stop();
    let run2 = register_run(&runner, &services.db.url, "fin2").await;
    finish(&runner, &run2).await;
    assert_eq!(runner.app.metrics.primary_logfile_upload_failed.get(), 1);
    let backed_up = format!("logs/fin2/{}/worker.log.gz", run2.log_id);
    assert_eq!(files_under(&backup_dir), vec![backed_up]);
    runner.shutdown().await.unwrap();

    // Back (empty, as a fresh moto is): the re-upload moves the log.
    let s3 = S3Server::start_on(port).await.unwrap();
    s3.create_bucket(BUCKET).await.unwrap();
    let storage = Storage::from_settings(&s3_settings(&services, &s3.endpoint, &backup_dir))
        .await
        .unwrap();
    let report = backup::reupload(&storage).await;
    assert_eq!((report.logs_moved, report.failures), (1, 0), "{report:?}");
    assert!(files_under(&backup_dir).is_empty());
    let objects = s3.objects(BUCKET).await.unwrap();
    assert_eq!(objects.len(), 1);
    assert_eq!(
        objects[0].0,
        format!("logs/fin2/{}/worker.log.gz", run2.log_id)
    );
    assert_eq!(gunzip(&objects[0].1), "worker says hi\n");
    assert_eq!(
        janitor_runner::storage::gcs::gzip_mtime(&objects[0].1),
        Some(1_580_638_230)
    );
}
