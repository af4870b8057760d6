//! Shared by the integration tests and the benchmark: freshly generated keys, a real key server
//! on 127.0.0.1:0 whose answers the test controls, `$connect` events from the fixtures, and
//! token minting.
#![allow(dead_code)]

use std::io::Write;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use authorizer::{Config, IssuerConfig};
use aws_lambda_events::apigw::ApiGatewayCustomAuthorizerRequestTypeRequest;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use lambda_runtime::{Context, LambdaEvent};
use serde_json::{json, Value};

pub const AUDIENCE: &str = "sumu-app";
pub const METHOD_ARN: &str = "arn:aws:execute-api:eu-west-1:123456789012:abcdef123/dev/$connect";
pub const STAGE_RESOURCE: &str = "arn:aws:execute-api:eu-west-1:123456789012:abcdef123/dev/*";

/// A freshly generated signing key with its public forms.
pub struct TestKey {
    pub kid: String,
    pub algorithm: Algorithm,
    pub encoding: EncodingKey,
    /// The public key as a JWK (with `kid`).
    pub jwk: Value,
    /// A self-signed certificate for the public key (PEM).
    pub certificate: String,
    /// The public key as SubjectPublicKeyInfo PEM: what an attacker can download.
    pub public_pem: String,
}

impl TestKey {
    pub fn generate(algorithm: Algorithm, kid: &str) -> TestKey {
        if algorithm == Algorithm::EdDSA {
            return TestKey::generate_ed25519(kid);
        }
        let (rcgen_alg, from_pem): (_, PemLoader) = match algorithm {
            Algorithm::RS256 => (&rcgen::PKCS_RSA_SHA256, EncodingKey::from_rsa_pem),
            Algorithm::ES256 => (&rcgen::PKCS_ECDSA_P256_SHA256, EncodingKey::from_ec_pem),
            Algorithm::ES384 => (&rcgen::PKCS_ECDSA_P384_SHA384, EncodingKey::from_ec_pem),
            Algorithm::EdDSA => (&rcgen::PKCS_ED25519, EncodingKey::from_ed_pem),
            other => panic!("no test key for {other:?}"),
        };
        let (private_pem, certificate, public_pem) = if algorithm == Algorithm::RS256 {
            // RSA generation takes seconds in an unoptimised build: one key per kid per process.
            static RSA_KEYS: Mutex<Vec<(String, KeyMaterial)>> = Mutex::new(Vec::new());
            let mut keys = RSA_KEYS.lock().unwrap();
            match keys.iter().find(|(k, _)| k == kid) {
                Some((_, material)) => material.clone(),
                None => {
                    let material = generate_material(rcgen_alg);
                    keys.push((kid.to_string(), material.clone()));
                    material
                }
            }
        } else {
            generate_material(rcgen_alg)
        };
        let encoding = from_pem(private_pem.as_bytes()).expect("encoding key");
        let mut jwk = Jwk::from_encoding_key(&encoding, algorithm).expect("jwk");
        jwk.common.key_id = Some(kid.to_string());
        TestKey {
            kid: kid.to_string(),
            algorithm,
            encoding,
            jwk: serde_json::to_value(jwk).expect("jwk json"),
            certificate,
            public_pem,
        }
    }

    /// The same key material published under another `kid`.
    pub fn renamed(mut self, kid: &str) -> TestKey {
        self.kid = kid.to_string();
        self.jwk["kid"] = Value::String(kid.to_string());
        self
    }

    /// Ed25519 through aws-lc directly: jsonwebtoken wants PKCS#8 v2 (with the public key),
    /// which rcgen does not write. No certificate: the x509 tests use RSA and EC.
    fn generate_ed25519(kid: &str) -> TestKey {
        use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
        use base64::Engine;
        let pair = Ed25519KeyPair::generate().expect("key generation");
        let pkcs8 = pair.to_pkcs8().expect("pkcs8");
        let public = pair.public_key().as_ref().to_vec();
        let x = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&public);
        TestKey {
            kid: kid.to_string(),
            algorithm: Algorithm::EdDSA,
            encoding: EncodingKey::from_ed_der(pkcs8.as_ref()),
            jwk: json!({"kty": "OKP", "crv": "Ed25519", "x": x, "kid": kid}),
            certificate: String::new(),
            public_pem: String::new(),
        }
    }

    /// Signs `claims` with this key, `kid` in the header.
    pub fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(self.algorithm);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding).expect("sign")
    }
}

type PemLoader = fn(&[u8]) -> jsonwebtoken::errors::Result<EncodingKey>;

/// (private key PEM, self-signed certificate PEM, public key PEM)
type KeyMaterial = (String, String, String);

fn generate_material(algorithm: &'static rcgen::SignatureAlgorithm) -> KeyMaterial {
    let pair = rcgen::KeyPair::generate_for(algorithm).expect("key generation");
    let certificate = rcgen::CertificateParams::new(vec!["issuer.test".to_string()])
        .expect("params")
        .self_signed(&pair)
        .expect("certificate")
        .pem();
    (pair.serialize_pem(), certificate, pair.public_key_pem())
}

pub fn jwks(keys: &[&TestKey]) -> String {
    json!({ "keys": keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>() }).to_string()
}

pub fn certificate_map(keys: &[&TestKey]) -> String {
    Value::Object(
        keys.iter()
            .map(|k| (k.kid.clone(), Value::String(k.certificate.clone())))
            .collect(),
    )
    .to_string()
}

/// How the key server answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Normal,
    /// HTTP 503.
    Failing,
    /// Accepts the request and never answers.
    Silent,
}

struct ServerState {
    body: Mutex<String>,
    cache_control: Mutex<Option<String>>,
    mode: Mutex<Mode>,
    hits: AtomicUsize,
}

/// A real HTTP key server on 127.0.0.1:0. It stops with the test's runtime, or on `shut_down`.
pub struct KeyServer {
    pub addr: SocketAddr,
    state: Arc<ServerState>,
    task: tokio::task::JoinHandle<()>,
}

impl KeyServer {
    pub async fn start(body: String) -> KeyServer {
        let state = Arc::new(ServerState {
            body: Mutex::new(body),
            cache_control: Mutex::new(None),
            mode: Mutex::new(Mode::Normal),
            hits: AtomicUsize::new(0),
        });
        let app = Router::new()
            .route("/keys", get(serve_keys))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        KeyServer { addr, state, task }
    }

    pub fn uri(&self) -> String {
        format!("http://{}/keys", self.addr)
    }

    /// Requests received so far (including ones never answered).
    pub fn hits(&self) -> usize {
        self.state.hits.load(Ordering::SeqCst)
    }

    pub fn publish(&self, body: String) {
        *self.state.body.lock().unwrap() = body;
    }

    pub fn set_cache_control(&self, value: Option<&str>) {
        *self.state.cache_control.lock().unwrap() = value.map(str::to_string);
    }

    pub fn set_mode(&self, mode: Mode) {
        *self.state.mode.lock().unwrap() = mode;
    }

    /// Closes the listening socket: later connections are refused.
    pub async fn shut_down(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}

async fn serve_keys(State(state): State<Arc<ServerState>>) -> Response {
    state.hits.fetch_add(1, Ordering::SeqCst);
    let mode = *state.mode.lock().unwrap();
    match mode {
        Mode::Failing => StatusCode::SERVICE_UNAVAILABLE.into_response(),
        Mode::Silent => std::future::pending().await,
        Mode::Normal => {
            let body = state.body.lock().unwrap().clone();
            let cache_control = state.cache_control.lock().unwrap().clone();
            let mut response = ([(header::CONTENT_TYPE, "application/json")], body).into_response();
            if let Some(value) = cache_control {
                response
                    .headers_mut()
                    .insert(header::CACHE_CONTROL, value.parse().expect("header value"));
            }
            response
        }
    }
}

/// An address on which nothing listens.
pub async fn closed_port_uri() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    format!("http://{addr}/keys")
}

pub fn issuer(name: &str, jwks_uri: String) -> IssuerConfig {
    IssuerConfig {
        issuer: name.to_string(),
        jwks_uri,
        audiences: vec![AUDIENCE.to_string()],
    }
}

/// A configuration for tests: short timeout, no re-fetch rate limit unless a test sets one.
pub fn config(issuers: Vec<IssuerConfig>) -> Config {
    let mut config = Config::new(issuers);
    config.jwks_timeout = Duration::from_millis(500);
    config.refetch_interval = Duration::ZERO;
    config
}

pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Claims that pass every check for `issuer`.
pub fn good_claims(issuer: &str) -> Value {
    let now = now();
    json!({
        "iss": issuer,
        "sub": "user-1",
        "aud": AUDIENCE,
        "iat": now,
        "nbf": now,
        "exp": now + 600,
    })
}

fn event_from_fixture(
    fixture: &str,
    token: Option<&str>,
) -> LambdaEvent<ApiGatewayCustomAuthorizerRequestTypeRequest> {
    let json = match token {
        Some(token) => {
            let escaped = serde_json::to_string(token).expect("escape");
            fixture.replace("__TOKEN__", &escaped[1..escaped.len() - 1])
        }
        None => fixture.to_string(),
    };
    let request = serde_json::from_str(&json).expect("fixture is a REQUEST authorizer event");
    LambdaEvent::new(request, Context::default())
}

/// A `$connect` event carrying `Authorization: Bearer <token>`.
pub fn connect_with_header(
    token: &str,
) -> LambdaEvent<ApiGatewayCustomAuthorizerRequestTypeRequest> {
    event_from_fixture(
        include_str!("../fixtures/connect-authorization-header.json"),
        Some(token),
    )
}

/// A `$connect` event carrying `?authorization=<token>`.
pub fn connect_with_query(
    token: &str,
) -> LambdaEvent<ApiGatewayCustomAuthorizerRequestTypeRequest> {
    event_from_fixture(
        include_str!("../fixtures/connect-authorization-query.json"),
        Some(token),
    )
}

/// A `$connect` event without any token.
pub fn connect_without_token() -> LambdaEvent<ApiGatewayCustomAuthorizerRequestTypeRequest> {
    event_from_fixture(include_str!("../fixtures/connect-no-token.json"), None)
}

/// Log lines written while `future` runs, as JSON objects (the Lambda logs JSON lines).
pub async fn logged<T>(future: impl std::future::Future<Output = T>) -> (T, Vec<Value>) {
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);
    impl Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buffer = Buffer::default();
    let writer = buffer.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_writer(move || writer.clone())
        .finish();
    // The tests run on a current-thread runtime, so the default stays on this thread.
    let guard = tracing::subscriber::set_default(subscriber);
    let output = future.await;
    drop(guard);
    let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
    let lines = text
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON log line"))
        .collect();
    (output, lines)
}

pub fn lines_saying<'a>(lines: &'a [Value], message: &str) -> Vec<&'a Value> {
    lines
        .iter()
        .filter(|line| {
            line["fields"]["message"]
                .as_str()
                .is_some_and(|m| m.contains(message))
        })
        .collect()
}
