//! The backchannel client completes a real TLS handshake and verifies the
//! peer: a rustls server with a self-signed certificate is reachable once
//! that certificate is trusted (through `SSL_CERT_FILE`, which the platform
//! verifier reads on Linux), and refused otherwise. One test in its own
//! process, since the trust store is read once per process.

use janitor_runner::backchannel::{ping, BackchannelError};
use janitor_runner::types::Backchannel;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Serves `GET /log-id` → `run-1` over TLS, one connection at a time.
async fn tls_worker(
    cert: rcgen::CertifiedKey<rcgen::KeyPair>,
) -> (u16, tokio::task::JoinHandle<()>) {
    let der_cert = cert.cert.der().clone();
    let key = rustls::pki_types::PrivateKeyDer::try_from(cert.signing_key.serialize_der()).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![der_cert], key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        loop {
            let (sock, _) = listener.accept().await.unwrap();
            // A refused handshake is an error here: the next client retries.
            let Ok(mut tls) = acceptor.accept(sock).await else {
                continue;
            };
            let mut buf = vec![0u8; 4096];
            let mut got = Vec::new();
            while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = tls.read(&mut buf).await.unwrap();
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&buf[..n]);
            }
            assert!(got.starts_with(b"GET /log-id "), "{got:?}");
            tls.write_all(
                b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\nconnection: close\r\n\r\nrun-1",
            )
            .await
            .unwrap();
            let _ = tls.shutdown().await;
        }
    });
    (port, task)
}

#[tokio::test]
async fn https_backchannel_verifies_and_reaches_a_tls_worker() {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let pem = dir.path().join("ca.pem");
    std::fs::write(&pem, cert.cert.pem()).unwrap();

    let untrusted = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    // Set before the first client is built; no other thread reads it yet.
    unsafe { std::env::set_var("SSL_CERT_FILE", &pem) };

    let (port, server) = tls_worker(cert).await;
    let bc = Backchannel::Polling {
        my_url: format!("https://localhost:{port}/"),
    };
    ping(&bc, "run-1").await.unwrap();
    assert!(matches!(
        ping(&bc, "run-2").await,
        Err(BackchannelError::Fatal(_))
    ));
    server.abort();

    // A certificate nobody trusts is refused.
    let (port, server) = tls_worker(untrusted).await;
    let bc = Backchannel::Polling {
        my_url: format!("https://localhost:{port}/"),
    };
    let err = ping(&bc, "run-1").await.unwrap_err();
    assert!(
        matches!(&err, BackchannelError::Unreachable(m) if m.to_lowercase().contains("certificate")),
        "{err:?}"
    );
    server.abort();
}
