use super::*;
use wiremock::matchers::{header as has_header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn polling(server: &MockServer) -> Backchannel {
    Backchannel::Polling {
        my_url: format!("{}/", server.uri()),
    }
}

fn jenkins(server: &MockServer) -> Backchannel {
    Backchannel::Jenkins {
        my_url: format!("{}/job/x/12", server.uri()),
    }
}

/// A URL on which nothing listens.
async fn dead_url() -> String {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    format!("http://{addr}/")
}

/// A log fetched whole, for comparing.
async fn fetch(bc: &Backchannel, name: &str) -> Result<Vec<u8>, BackchannelError> {
    let resp = get_log_file(bc, name).await?;
    Ok(resp.bytes().await.unwrap().to_vec())
}

async fn requests(server: &MockServer) -> Vec<String> {
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .map(|r| format!("{} {}", r.method, r.url.path()))
        .collect()
}

#[test]
fn join_appends_encoded_segments_like_yarl() {
    let j = |b: &str, s: &[&str]| join(b, s).unwrap().to_string();
    assert_eq!(j("http://h:1/", &["logs"]), "http://h:1/logs");
    assert_eq!(j("http://h:1", &["logs"]), "http://h:1/logs");
    assert_eq!(
        j("http://h/base", &["logs", "a b"]),
        "http://h/base/logs/a%20b"
    );
    assert_eq!(j("http://h/base/?q=1", &["kill"]), "http://h/base/kill");
    assert_eq!(j("http://h/", &["logs", "50%"]), "http://h/logs/50%25");
    assert!(matches!(
        join("not a url", &["x"]),
        Err(BackchannelError::Unreachable(_))
    ));
}

#[tokio::test]
async fn polling_lists_logs_as_the_worker_sends_them() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/logs"))
        .and(has_header("accept", "application/json"))
        .respond_with(
            ResponseTemplate::new(200).set_body_raw(r#"["b.log", "a.log"]"#, "application/json"),
        )
        .mount(&server)
        .await;
    let got = list_log_files(&polling(&server)).await.unwrap();
    assert_eq!(got, serde_json::json!(["b.log", "a.log"]));
}

#[tokio::test]
async fn polling_list_failures() {
    let server = MockServer::start().await;
    Mock::given(path("/logs"))
        .respond_with(ResponseTemplate::new(500))
        .mount(&server)
        .await;
    let err = list_log_files(&polling(&server)).await.unwrap_err();
    assert!(
        matches!(&err, BackchannelError::Unreachable(m) if m.contains("500")),
        "{err:?}"
    );

    let server = MockServer::start().await;
    Mock::given(path("/logs"))
        .respond_with(ResponseTemplate::new(200).set_body_raw("[]", "text/html"))
        .mount(&server)
        .await;
    let err = list_log_files(&polling(&server)).await.unwrap_err();
    assert!(matches!(err, BackchannelError::Invalid(_)), "{err:?}");

    let dead = Backchannel::Polling {
        my_url: dead_url().await,
    };
    let err = list_log_files(&dead).await.unwrap_err();
    assert!(matches!(err, BackchannelError::Unreachable(_)), "{err:?}");

    assert_eq!(
        list_log_files(&Backchannel::None).await,
        Err(BackchannelError::NotSupported)
    );
}

#[tokio::test]
async fn polling_fetches_log_bytes_unmodified() {
    let server = MockServer::start().await;
    let bytes = b"line 1\n\xff\x00line 2\n".to_vec();
    Mock::given(method("GET"))
        .and(path("/logs/build.log"))
        .respond_with(ResponseTemplate::new(200).set_body_bytes(bytes.clone()))
        .mount(&server)
        .await;
    let got = fetch(&polling(&server), "build.log").await.unwrap();
    assert_eq!(got.to_vec(), bytes);
}

#[tokio::test]
async fn polling_missing_log_is_not_found_and_other_errors_are_not() {
    let server = MockServer::start().await;
    Mock::given(path("/logs/missing.log"))
        .respond_with(ResponseTemplate::new(404))
        .mount(&server)
        .await;
    Mock::given(path("/logs/broken.log"))
        .respond_with(ResponseTemplate::new(502))
        .mount(&server)
        .await;
    let bc = polling(&server);
    assert_eq!(
        fetch(&bc, "missing.log").await,
        Err(BackchannelError::NotFound("missing.log".into()))
    );
    let err = fetch(&bc, "broken.log").await.unwrap_err();
    assert!(
        matches!(&err, BackchannelError::Unreachable(m) if m.contains("502")),
        "{err:?}"
    );
    // Dot segments never reach the worker.
    assert_eq!(
        fetch(&bc, "..").await,
        Err(BackchannelError::NotFound("..".into()))
    );
    assert_eq!(
        requests(&server).await,
        vec!["GET /logs/missing.log", "GET /logs/broken.log"]
    );

    let dead = Backchannel::Polling {
        my_url: dead_url().await,
    };
    let err = fetch(&dead, "build.log").await.unwrap_err();
    assert!(matches!(err, BackchannelError::Unreachable(_)), "{err:?}");
    assert_eq!(
        fetch(&Backchannel::None, "x").await,
        Err(BackchannelError::NotSupported)
    );
}

#[tokio::test]
async fn polling_kill_posts_to_the_worker() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/kill"))
        .and(has_header("accept", "application/json"))
        .respond_with(ResponseTemplate::new(200).set_body_raw("{}", "application/json"))
        .expect(1)
        .mount(&server)
        .await;
    kill(&polling(&server)).await.unwrap();

    // The real worker has no /kill route (QH-8): it lacks it, which is
    // not a failure to reach it.
    let server = MockServer::start().await;
    let err = kill(&polling(&server)).await.unwrap_err();
    assert!(
        matches!(&err, BackchannelError::Lacks(m) if m.contains("no kill route (404)")),
        "{err:?}"
    );

    let dead = Backchannel::Polling {
        my_url: dead_url().await,
    };
    assert!(matches!(
        kill(&dead).await,
        Err(BackchannelError::Unreachable(_))
    ));
}

#[tokio::test]
async fn kill_is_unsupported_without_polling_backchannel() {
    let server = MockServer::start().await;
    assert_eq!(
        kill(&Backchannel::None).await,
        Err(BackchannelError::NotSupported)
    );
    assert_eq!(
        kill(&jenkins(&server)).await,
        Err(BackchannelError::NotSupported)
    );
    assert!(requests(&server).await.is_empty());
}

#[tokio::test]
async fn polling_ping_checks_the_log_id() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/log-id"))
        .respond_with(ResponseTemplate::new(200).set_body_string("run-1"))
        .mount(&server)
        .await;
    let bc = polling(&server);
    ping(&bc, "run-1").await.unwrap();
    assert_eq!(
        ping(&bc, "run-2").await,
        Err(BackchannelError::Fatal(
            "Worker started processing new run run-1 rather than run-2".into()
        ))
    );
}

#[tokio::test]
async fn polling_ping_errors_are_retryable() {
    let server = MockServer::start().await;
    Mock::given(path("/log-id"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&server)
        .await;
    let err = ping(&polling(&server), "run-1").await.unwrap_err();
    assert!(
        matches!(&err, BackchannelError::Unreachable(m) if m.starts_with("Failed to ping client ") && m.contains("503")),
        "{err:?}"
    );
    let dead = Backchannel::Polling {
        my_url: dead_url().await,
    };
    assert!(matches!(
        ping(&dead, "run-1").await,
        Err(BackchannelError::Unreachable(_))
    ));
    assert_eq!(
        ping(&Backchannel::None, "run-1").await,
        Err(BackchannelError::NotSupported)
    );
}

#[tokio::test]
async fn jenkins_serves_only_the_console_log() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/job/x/12/logText/progressiveText"))
        .respond_with(ResponseTemplate::new(200).set_body_string("console\n"))
        .mount(&server)
        .await;
    let bc = jenkins(&server);
    assert_eq!(
        list_log_files(&bc).await.unwrap(),
        serde_json::json!(["worker.log"])
    );
    assert_eq!(
        fetch(&bc, "worker.log").await.unwrap().to_vec(),
        b"console\n"
    );
    assert_eq!(
        fetch(&bc, "build.log").await,
        Err(BackchannelError::NotFound("build.log".into()))
    );
    // Listing needs no request; build.log was refused locally.
    assert_eq!(
        requests(&server).await,
        vec!["GET /job/x/12/logText/progressiveText"]
    );
}

#[tokio::test]
async fn jenkins_console_errors_are_not_not_found() {
    let server = MockServer::start().await;
    Mock::given(path("/job/x/12/logText/progressiveText"))
        .respond_with(ResponseTemplate::new(404))
        .mount(&server)
        .await;
    let err = fetch(&jenkins(&server), "worker.log").await.unwrap_err();
    assert!(matches!(err, BackchannelError::Unreachable(_)), "{err:?}");
}

#[tokio::test]
async fn jenkins_ping_reads_the_build_status() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/job/x/12/api/json"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(serde_json::json!({"id": "12", "result": null})),
        )
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/job/x/12/api/json"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(serde_json::json!({"id": "12", "result": "FAILURE"})),
        )
        .mount(&server)
        .await;
    let bc = jenkins(&server);
    ping(&bc, "run-1").await.unwrap();
    assert_eq!(
        ping(&bc, "run-1").await,
        Err(BackchannelError::Fatal(
            "Jenkins lists job 12 for run run-1 as failed".into()
        ))
    );
}

#[tokio::test]
async fn jenkins_ping_failures() {
    let server = MockServer::start().await;
    let url = format!("{}/job/x/12", server.uri());
    assert_eq!(
        ping(&jenkins(&server), "r").await,
        Err(BackchannelError::Fatal(format!(
            "Jenkins job {url} has disappeared"
        )))
    );

    let server = MockServer::start().await;
    Mock::given(path("/job/x/12/api/json"))
        .respond_with(ResponseTemplate::new(500))
        .mount(&server)
        .await;
    assert!(matches!(
        ping(&jenkins(&server), "r").await,
        Err(BackchannelError::Unreachable(_))
    ));

    let server = MockServer::start().await;
    Mock::given(path("/job/x/12/api/json"))
        .respond_with(ResponseTemplate::new(200).set_body_string("<html>"))
        .mount(&server)
        .await;
    assert!(matches!(
        ping(&jenkins(&server), "r").await,
        Err(BackchannelError::Invalid(_))
    ));

    let dead = Backchannel::Jenkins {
        my_url: dead_url().await,
    };
    assert!(matches!(
        ping(&dead, "r").await,
        Err(BackchannelError::Unreachable(_))
    ));
}

/// An `https://` backchannel opens with a TLS ClientHello (record type
/// 0x16, version 3.x, handshake type 1), naming the host by SNI.
#[tokio::test]
async fn https_backchannels_speak_tls() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let peer = tokio::spawn(async move {
        use tokio::io::AsyncReadExt;
        let (mut sock, _) = listener.accept().await.unwrap();
        let mut first = vec![0u8; 512];
        let n = sock.read(&mut first).await.unwrap();
        first.truncate(n);
        first
    });
    let bc = Backchannel::Polling {
        my_url: format!("https://localhost:{port}/"),
    };
    let err = ping(&bc, "r").await.unwrap_err();
    assert!(matches!(err, BackchannelError::Unreachable(_)), "{err:?}");
    let hello = peer.await.unwrap();
    assert!(hello.len() > 5, "{hello:?}");
    assert_eq!((hello[0], hello[1], hello[5]), (0x16, 0x03, 0x01));
    assert!(hello.windows(9).any(|w| w == b"localhost"), "no SNI");
}

#[tokio::test]
async fn ping_accepts_the_workers_json_string_and_a_bare_id() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/log-id"))
        .respond_with(ResponseTemplate::new(200).set_body_raw("\"run-1\"", "application/json"))
        .mount(&server)
        .await;
    let bc = polling(&server);
    ping(&bc, "run-1").await.unwrap();
    assert_eq!(
        ping(&bc, "run-2").await,
        Err(BackchannelError::Fatal(
            "Worker started processing new run run-1 rather than run-2".into()
        ))
    );
    assert_eq!(parse_log_id(b"run-3").unwrap(), "run-3");
    assert_eq!(parse_log_id(b"\"run-3\"").unwrap(), "run-3");
    // Another JSON kind is compared as text, as a bare id would be.
    assert_eq!(parse_log_id(b"[1]").unwrap(), "[1]");
}

#[tokio::test]
async fn redirects_are_never_followed() {
    let target = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_raw("[\"secret\"]", "application/json"))
        .mount(&target)
        .await;
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(302)
                .insert_header("location", format!("{}/active-runs", target.uri())),
        )
        .mount(&server)
        .await;
    let bc = polling(&server);
    assert!(matches!(
        list_log_files(&bc).await,
        Err(BackchannelError::Unreachable(m)) if m.contains("302")
    ));
    assert!(matches!(
        fetch(&bc, "build.log").await,
        Err(BackchannelError::Unreachable(m)) if m.contains("302")
    ));
    assert!(matches!(
        ping(&bc, "run-1").await,
        Err(BackchannelError::Unreachable(_))
    ));
    assert!(
        requests(&target).await.is_empty(),
        "the redirect was followed"
    );
}

#[tokio::test]
async fn answers_past_the_bound_are_refused() {
    let server = MockServer::start().await;
    Mock::given(path("/log-id"))
        .respond_with(ResponseTemplate::new(200).set_body_string("x".repeat(MAX_LOG_ID_BODY + 1)))
        .mount(&server)
        .await;
    Mock::given(path("/logs"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(
            format!("[\"{}\"]", "a".repeat(MAX_JSON_BODY)),
            "application/json",
        ))
        .mount(&server)
        .await;
    let bc = polling(&server);
    assert!(matches!(
        ping(&bc, "run-1").await,
        Err(BackchannelError::Unreachable(m)) if m.contains("larger than")
    ));
    assert!(matches!(
        list_log_files(&bc).await,
        Err(BackchannelError::Unreachable(m)) if m.contains("larger than")
    ));
}

#[test]
fn userinfo_is_removed_and_nothing_else() {
    assert_eq!(
        without_userinfo("http://u:p@127.0.0.1:58123/x?q=a@b"),
        "http://127.0.0.1:58123/x?q=a@b"
    );
    assert_eq!(without_userinfo("https://h/p@q"), "https://h/p@q");
    assert_eq!(without_userinfo("http://a@b@h:1"), "http://h:1");
    assert_eq!(without_userinfo("opaque"), "opaque");
}

#[tokio::test]
async fn only_http_and_https_are_contacted() {
    for bad in ["file:///etc/", "gopher://127.0.0.1:70/", "unix:/run/x"] {
        let bc = Backchannel::Polling { my_url: bad.into() };
        assert!(
            matches!(
                list_log_files(&bc).await,
                Err(BackchannelError::Unreachable(m)) if m.contains("http or https")
            ),
            "{bad}"
        );
        assert!(check_scheme(&url::Url::parse(bad).unwrap()).is_err());
    }
    assert!(check_scheme(&url::Url::parse("https://w/").unwrap()).is_ok());
}
