//! The client over TLS, as on AWS: a real rustls server on 127.0.0.1:0 with a fresh
//! self-signed certificate for `localhost`. The client trusts the system's roots, read from
//! `SSL_CERT_FILE` when it is set (rustls-native-certs), which is how this test makes it
//! trust the certificate, and how an operator would add a private CA. One test in its own
//! binary: the variable is process-wide.

mod support;

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use management_client::{ManagementClient, PostOutcome};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use support::raw_http::{self, Reply, Seen, OK};

/// Serves `https://localhost:PORT/dev` with a new certificate; returns the endpoint, the
/// certificate's PEM, what the server saw, and the SNI and ALPN of each handshake.
async fn tls_endpoint() -> (String, String, Arc<Seen>, Arc<Mutex<Vec<(String, String)>>>) {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
        certified.signing_key.serialize_der(),
    ));
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![certified.cert.der().clone()], key)
        .unwrap();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Seen::default());
    let handshakes = Arc::new(Mutex::new(Vec::new()));
    let (counters, names) = (Arc::clone(&seen), Arc::clone(&handshakes));
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            counters.accepted.fetch_add(1, Ordering::SeqCst);
            let Ok(stream) = acceptor.accept(socket).await else {
                continue;
            };
            let connection = stream.get_ref().1;
            names.lock().unwrap().push((
                connection.server_name().unwrap_or_default().to_string(),
                String::from_utf8_lossy(connection.alpn_protocol().unwrap_or_default())
                    .into_owned(),
            ));
            let script: raw_http::Script = Arc::new(|_| Reply::Answer(OK.to_vec()));
            tokio::spawn(raw_http::serve(stream, script, Arc::clone(&counters)));
        }
    });
    (
        format!("https://localhost:{port}/dev"),
        certified.cert.pem(),
        seen,
        handshakes,
    )
}

#[tokio::test]
async fn posts_go_over_verified_tls_with_sni_and_http_1_1_by_alpn() {
    let (endpoint, pem, seen, handshakes) = tls_endpoint().await;
    let directory = std::env::temp_dir().join(format!("sumu-tls-{}", std::process::id()));
    std::fs::create_dir_all(&directory).unwrap();
    let config = support::sdk_config().await;

    // Roots that do not include the server's certificate: the handshake fails, retryably,
    // and nothing is sent.
    let stranger = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let untrusted = directory.join("untrusted.pem");
    std::fs::write(&untrusted, stranger.cert.pem()).unwrap();
    std::env::set_var("SSL_CERT_FILE", &untrusted);
    let client = ManagementClient::new(&config, &endpoint, Duration::from_secs(5));
    match client.post("a", b"{}").await {
        PostOutcome::Retryable(reason) => assert!(
            reason.starts_with("dispatch failure: TLS handshake with localhost:")
                && reason.contains("certificate"),
            "{reason}"
        ),
        other => panic!("{other:?}"),
    }
    assert_eq!(seen.requests.load(Ordering::SeqCst), 0);

    // The server's own certificate as the root: delivered, and the connection kept alive.
    let trusted = directory.join("trusted.pem");
    std::fs::write(&trusted, &pem).unwrap();
    std::env::set_var("SSL_CERT_FILE", &trusted);
    let client = ManagementClient::new(&config, &endpoint, Duration::from_secs(5));
    for id in ["a", "b", "c"] {
        assert_eq!(client.post(id, b"{}").await, PostOutcome::Delivered);
    }
    assert_eq!(seen.requests.load(Ordering::SeqCst), 3);
    assert_eq!(
        seen.accepted.load(Ordering::SeqCst),
        2,
        "the failed handshake, then one"
    );
    assert_eq!(
        handshakes.lock().unwrap().as_slice(),
        [("localhost".to_string(), "http/1.1".to_string())]
    );
    let head = seen.heads.lock().unwrap()[0].to_ascii_lowercase();
    assert!(
        head.contains(&format!(
            "host: localhost:{}\r\n",
            endpoint.split(':').nth(2).unwrap().trim_end_matches("/dev")
        )),
        "{head}"
    );
    std::fs::remove_dir_all(&directory).unwrap();
}
