//! Posting to one connection, and closing it, through the API Gateway management API.
//!
//! [`ManagementClient`]: `POST {stage}/@connections/{id}` (and `DELETE`, to close) over HTTP/1.1 keep-alive
//! ([`crate::http1`]: tokio + rustls, the TLS stack the SDK uses), signed with SigV4
//! ([`crate::sigv4`]) from the SDK's credentials provider. It replaced
//! `aws-sdk-apigatewaymanagement` on the pusher's post path because the SDK spent 6–7× the CPU
//! per post of this client, and no configuration of it came close (README.md has the
//! measurements).

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use aws_config::SdkConfig;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use bytes::Bytes;

use crate::http1::{Answer, HttpPool, Origin, SendError};
use crate::sigv4::{self, DayKey, Keys, Timestamp};

/// What one post achieved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PostOutcome {
    Delivered,
    /// 410: the WebSocket connection is gone (whoever keeps its id should forget it).
    Gone,
    /// Worth another try: 429 (throttled), 5xx, a timeout or a broken connection.
    Retryable(String),
    /// Trying again cannot help (403, 413, a malformed request).
    Failed(String),
}

/// What one close (`DELETE @connections/{id}`) achieved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeleteOutcome {
    /// 204: API Gateway closes the WebSocket connection (the client sees close code 1000).
    Closed,
    /// 410: the connection was gone already (closed, or never fully connected).
    Gone,
    /// Worth another try: 429 (throttled), 5xx, a timeout or a broken connection.
    Retryable(String),
    /// Trying again cannot help (403, a malformed request).
    Failed(String),
}

impl From<PostOutcome> for DeleteOutcome {
    /// A close's answer means what a post's does; only success has another name.
    fn from(outcome: PostOutcome) -> DeleteOutcome {
        match outcome {
            PostOutcome::Delivered => DeleteOutcome::Closed,
            PostOutcome::Gone => DeleteOutcome::Gone,
            PostOutcome::Retryable(reason) => DeleteOutcome::Retryable(reason),
            PostOutcome::Failed(reason) => DeleteOutcome::Failed(reason),
        }
    }
}

/// Where posts go, parsed once from the management endpoint.
#[derive(Debug, Clone)]
struct Target {
    origin: Origin,
    /// The `Host` header, also signed: the host, with the port only when not the default.
    host: String,
    /// `/{stage}/@connections/`
    connections_path: String,
}

impl Target {
    fn parse(endpoint: &str) -> Result<Target, String> {
        let uri: http::Uri = endpoint
            .trim_end_matches('/')
            .parse()
            .map_err(|e| format!("{endpoint:?} is not a URL: {e}"))?;
        let scheme = uri
            .scheme_str()
            .filter(|s| *s == "https" || *s == "http")
            .ok_or(format!("{endpoint:?} is not an http(s) URL"))?;
        let hostname = uri.host().ok_or(format!("{endpoint:?} has no host"))?;
        if uri.query().is_some() {
            return Err(format!("{endpoint:?} has a query"));
        }
        let tls = scheme == "https";
        let default_port = if tls { 443 } else { 80 };
        let port = uri.port_u16().unwrap_or(default_port);
        let host = if port == default_port {
            hostname.to_string()
        } else {
            format!("{hostname}:{port}")
        };
        Ok(Target {
            origin: Origin {
                host: hostname.to_string(),
                port,
                tls,
            },
            host,
            connections_path: format!("{}/@connections/", uri.path().trim_end_matches('/')),
        })
    }
}

/// A signing key for the current credentials and day, and when to ask the provider again.
struct Signing {
    key: DayKey,
    refresh_at: SystemTime,
    /// When the credentials stop working (`None`: unknown).
    expires_at: Option<SystemTime>,
}

/// Credentials from the SDK's provider chain, cached until shortly before they expire (the
/// SDK's own identity cache needs its orchestrator's runtime components, so this is the same
/// policy in a few lines): Lambda's credentials expire and must be refreshed, never read once.
struct Signer {
    provider: Option<SharedCredentialsProvider>,
    region: String,
    current: Mutex<Option<Arc<Signing>>>,
    /// One refresh at a time: 200 posts in flight must not make 200 provider calls.
    refreshing: tokio::sync::Mutex<()>,
}

/// Refresh this long before the credentials' expiry.
const REFRESH_BEFORE_EXPIRY: Duration = Duration::from_secs(5 * 60);
/// Credentials without an expiry are read again after this long (the SDK's default).
const NO_EXPIRY_REFRESH: Duration = Duration::from_secs(15 * 60);
/// However close the expiry, the provider is not asked more often than this.
const MIN_REFRESH: Duration = Duration::from_secs(1);
/// After a failed refresh, the provider is asked again this much later.
const RETRY_REFRESH: Duration = Duration::from_secs(5);

impl Signer {
    fn cached(&self, at: Timestamp, now: SystemTime) -> Option<Arc<Signing>> {
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        let signing = current.as_ref()?;
        if now >= signing.refresh_at {
            return None;
        }
        if !signing.key.is_for_day(at) {
            // A new UTC day: same credentials, new derived key.
            let renewed = Arc::new(Signing {
                key: DayKey::new(signing.key.keys().clone(), &self.region, at),
                refresh_at: signing.refresh_at,
                expires_at: signing.expires_at,
            });
            *current = Some(renewed.clone());
            return Some(renewed);
        }
        Some(signing.clone())
    }

    async fn signing(&self, at: Timestamp) -> Result<Arc<Signing>, PostOutcome> {
        let now = SystemTime::now();
        if let Some(signing) = self.cached(at, now) {
            return Ok(signing);
        }
        let _refreshing = self.refreshing.lock().await;
        if let Some(signing) = self.cached(at, now) {
            return Ok(signing);
        }
        let provider = self
            .provider
            .as_ref()
            .ok_or_else(|| PostOutcome::Failed("no credentials provider configured".into()))?;
        let credentials = match provider.provide_credentials().await {
            Ok(credentials) => credentials,
            Err(error) => return self.keep_using(at, now, error),
        };
        let keys = Keys {
            access_key_id: credentials.access_key_id().to_string(),
            secret_access_key: credentials.secret_access_key().to_string(),
            session_token: credentials.session_token().map(str::to_string),
        };
        // Checked once here, so every post can write it into its head as it is.
        if !keys.session_token.as_deref().is_none_or(is_header_value) {
            return Err(PostOutcome::Failed(
                "the session token is not a valid header value".into(),
            ));
        }
        let refresh_at = match credentials.expiry() {
            Some(expiry) => expiry
                .checked_sub(REFRESH_BEFORE_EXPIRY)
                .unwrap_or(now)
                .max(now + MIN_REFRESH),
            None => now + NO_EXPIRY_REFRESH,
        };
        let signing = Arc::new(Signing {
            key: DayKey::new(keys, &self.region, at),
            refresh_at,
            expires_at: credentials.expiry(),
        });
        *self.current.lock().unwrap_or_else(|e| e.into_inner()) = Some(signing.clone());
        Ok(signing)
    }

    /// A refresh failed: credentials that have not expired yet keep signing (the provider is
    /// asked again in a few seconds, not on every post); without any, the post is retryable.
    fn keep_using(
        &self,
        at: Timestamp,
        now: SystemTime,
        error: aws_credential_types::provider::error::CredentialsError,
    ) -> Result<Arc<Signing>, PostOutcome> {
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        let usable = current
            .as_ref()
            .filter(|signing| signing.expires_at.is_none_or(|expiry| now < expiry));
        let Some(old) = usable else {
            return Err(PostOutcome::Retryable(format!("credentials: {error}")));
        };
        tracing::warn!(%error, "refreshing the credentials failed; the current ones keep signing");
        let kept = Arc::new(Signing {
            key: DayKey::new(old.key.keys().clone(), &self.region, at),
            refresh_at: now + RETRY_REFRESH,
            expires_at: old.expires_at,
        });
        *current = Some(kept.clone());
        Ok(kept)
    }
}

/// The body of the last payload and its SHA-256: a fan-out posts the same bytes to every
/// target, so they are copied and hashed once, not per post (128 KB hashes in ~60 µs).
struct PayloadCache {
    last: Mutex<Option<(Bytes, Arc<str>)>>,
}

impl PayloadCache {
    fn get(&self, data: &[u8]) -> (Bytes, Arc<str>) {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((bytes, hash)) = last.as_ref() {
            if bytes[..] == *data {
                return (bytes.clone(), hash.clone());
            }
        }
        let entry = (
            Bytes::copy_from_slice(data),
            Arc::from(sigv4::sha256_hex(data)),
        );
        *last = Some(entry.clone());
        entry
    }
}

/// The management API through one pool of keep-alive HTTP/1.1 connections, SigV4-signed. No
/// retries of its own: the caller decides (the pusher's fan-out retries per connection within
/// the Lambda's remaining time).
pub struct ManagementClient {
    /// The endpoint and its HTTP connections (or why the endpoint is unusable).
    target: Result<(Target, HttpPool), String>,
    signer: Signer,
    payloads: PayloadCache,
    attempt_timeout: Duration,
}

impl std::fmt::Debug for ManagementClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ManagementClient")
            .field("target", &self.target.as_ref().map(|(target, _)| target))
            .field("region", &self.signer.region)
            .field("attempt_timeout", &self.attempt_timeout)
            .finish_non_exhaustive()
    }
}

impl ManagementClient {
    /// `endpoint` is `https://{api-id}.execute-api.{region}.amazonaws.com/{stage}` (or
    /// sumu-local's `http://127.0.0.1:PORT/{stage}`). Credentials and region come from
    /// `sdk_config` (the default provider chain in Lambda). `attempt_timeout` bounds one
    /// post, connecting (and the TLS handshake) included.
    pub fn new(sdk_config: &SdkConfig, endpoint: &str, attempt_timeout: Duration) -> Self {
        let target = Target::parse(endpoint).map(|target| {
            let pool = HttpPool::new(target.origin.clone());
            (target, pool)
        });
        if let Err(error) = &target {
            tracing::error!(%error, "invalid management endpoint; every post will fail");
        }
        let region = sdk_config
            .region()
            .map(|region| region.as_ref().to_string())
            .or_else(|| region_of(endpoint))
            .unwrap_or_else(|| "us-east-1".to_string());
        ManagementClient {
            target,
            signer: Signer {
                provider: sdk_config.credentials_provider(),
                region,
                current: Mutex::new(None),
                refreshing: tokio::sync::Mutex::new(()),
            },
            payloads: PayloadCache {
                last: Mutex::new(None),
            },
            attempt_timeout,
        }
    }

    /// Posts `data` to the connection `connection_id`, one attempt bounded by the attempt
    /// timeout, and says what came of it.
    pub async fn post(&self, connection_id: &str, data: &[u8]) -> PostOutcome {
        let (target, pool) = match &self.target {
            Ok(target) => (&target.0, &target.1),
            Err(error) => {
                return PostOutcome::Failed(format!("invalid management endpoint: {error}"))
            }
        };
        tokio::time::timeout(
            self.attempt_timeout,
            self.send(target, pool, connection_id, Some(data)),
        )
        .await
        .unwrap_or_else(|_| PostOutcome::Retryable("timeout".into()))
    }

    /// Closes the connection `connection_id` (`DELETE @connections/{id}`), one attempt bounded
    /// by the attempt timeout, and says what came of it.
    pub async fn delete(&self, connection_id: &str) -> DeleteOutcome {
        let (target, pool) = match &self.target {
            Ok(target) => (&target.0, &target.1),
            Err(error) => {
                return DeleteOutcome::Failed(format!("invalid management endpoint: {error}"))
            }
        };
        tokio::time::timeout(
            self.attempt_timeout,
            self.send(target, pool, connection_id, None),
        )
        .await
        .unwrap_or_else(|_| PostOutcome::Retryable("timeout".into()))
        .into()
    }

    /// One exchange: `POST` with `data`, or `DELETE` (no body) when `data` is `None`.
    async fn send(
        &self,
        target: &Target,
        pool: &HttpPool,
        connection_id: &str,
        data: Option<&[u8]>,
    ) -> PostOutcome {
        let at = Timestamp::now();
        let signing = match self.signer.signing(at).await {
            Ok(signing) => signing,
            Err(outcome) => return outcome,
        };
        let mut path =
            String::with_capacity(target.connections_path.len() + 3 * connection_id.len());
        path.push_str(&target.connections_path);
        sigv4::encode_segment_into(connection_id, &mut path);
        let (method, body, payload_hash) = match data {
            Some(data) => {
                let (body, hash) = self.payloads.get(data);
                ("POST", body, hash)
            }
            None => (
                "DELETE",
                Bytes::new(),
                Arc::from(sigv4::EMPTY_PAYLOAD_SHA256),
            ),
        };
        let amz_date = at.amz_date();
        let authorization =
            signing
                .key
                .authorization_of(method, &target.host, &path, &amz_date, &payload_hash);
        // Every part was checked when it was made: the path is percent-encoded, the host
        // parsed, the token checked, the rest generated.
        let token = signing.key.session_token();
        let mut head = String::with_capacity(
            256 + path.len() + target.host.len() + authorization.len() + token.map_or(0, str::len),
        );
        for part in [
            method,
            " ",
            &path,
            " HTTP/1.1\r\nhost: ",
            &target.host,
            if data.is_some() {
                "\r\ncontent-type: application/octet-stream\r\ncontent-length: "
            } else {
                "\r\ncontent-length: "
            },
            &body.len().to_string(),
            "\r\nx-amz-date: ",
            &amz_date,
            if token.is_some() {
                "\r\nx-amz-security-token: "
            } else {
                ""
            },
            token.unwrap_or(""),
            "\r\nauthorization: ",
            &authorization,
            "\r\n\r\n",
        ] {
            head.push_str(part);
        }
        match pool.send(head.as_bytes(), &body).await {
            Ok(Answer { status, error_type }) => classify(
                status,
                error_type
                    .as_deref()
                    // `GoneException:http://internal.amazon.com/coral/…` → `GoneException`
                    .map(|value| value.split(':').next().unwrap_or(value)),
            ),
            Err(SendError::Dispatch(error)) => {
                PostOutcome::Retryable(format!("dispatch failure: {error}"))
            }
            Err(SendError::UnreadableResponse(error)) => {
                PostOutcome::Retryable(format!("unreadable response: {error}"))
            }
        }
    }
}

/// The management API's answer as an outcome: what the SDK's error types meant, from the
/// status and `x-amzn-ErrorType`.
fn classify(code: u16, error_type: Option<&str>) -> PostOutcome {
    if (200..300).contains(&code) {
        return PostOutcome::Delivered;
    }
    let error_type = error_type.unwrap_or("unknown error");
    let what = format!("{code} {error_type}");
    match (code, error_type) {
        (410, _) | (_, "GoneException") => PostOutcome::Gone,
        (429 | 500..=599, _) | (_, "LimitExceededException") => PostOutcome::Retryable(what),
        _ => PostOutcome::Failed(what),
    }
}

/// RFC 9110's field-value: visible ASCII, spaces and tabs (no CR or LF to end the header).
fn is_header_value(value: &str) -> bool {
    value
        .bytes()
        .all(|b| b == b'\t' || b == b' ' || (0x21..=0x7e).contains(&b))
}

/// `abc.execute-api.eu-west-1.amazonaws.com` → `eu-west-1`.
fn region_of(endpoint: &str) -> Option<String> {
    let host = endpoint.split("://").nth(1)?.split(['/', ':']).next()?;
    let mut labels = host.split('.');
    labels.find(|label| *label == "execute-api")?;
    labels.next().map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_classified_as_the_sdk_classified_its_errors() {
        let cases = [
            (200, None, PostOutcome::Delivered),
            (410, Some("GoneException"), PostOutcome::Gone),
            (410, None, PostOutcome::Gone),
            (
                429,
                Some("LimitExceededException"),
                PostOutcome::Retryable("429 LimitExceededException".into()),
            ),
            (
                500,
                Some("InternalServerErrorException"),
                PostOutcome::Retryable("500 InternalServerErrorException".into()),
            ),
            (
                503,
                None,
                PostOutcome::Retryable("503 unknown error".into()),
            ),
            (
                403,
                Some("ForbiddenException"),
                PostOutcome::Failed("403 ForbiddenException".into()),
            ),
            (
                413,
                Some("PayloadTooLargeException"),
                PostOutcome::Failed("413 PayloadTooLargeException".into()),
            ),
        ];
        for (status, error_type, expected) in cases {
            assert_eq!(
                classify(status, error_type),
                expected,
                "{status} {error_type:?}"
            );
        }
    }

    #[test]
    fn endpoints_are_parsed_once_into_origin_host_and_path() {
        let target = Target::parse("https://abc.execute-api.eu-west-1.amazonaws.com/prod").unwrap();
        assert_eq!(
            target.origin,
            Origin {
                host: "abc.execute-api.eu-west-1.amazonaws.com".into(),
                port: 443,
                tls: true
            }
        );
        assert_eq!(target.host, "abc.execute-api.eu-west-1.amazonaws.com");
        assert_eq!(target.connections_path, "/prod/@connections/");
        let local = Target::parse("http://127.0.0.1:8080/dev/").unwrap();
        assert_eq!(local.host, "127.0.0.1:8080");
        assert_eq!((local.origin.port, local.origin.tls), (8080, false));
        assert_eq!(local.connections_path, "/dev/@connections/");
        let explicit = Target::parse("https://ws.example.com:443/base/prod").unwrap();
        assert_eq!(explicit.host, "ws.example.com");
        assert_eq!(explicit.connections_path, "/base/prod/@connections/");
        assert!(Target::parse("ftp://x/dev").is_err());
        assert!(Target::parse("not a url").is_err());
        assert!(Target::parse("https://x.example.com/dev?stage=1").is_err());
        assert_eq!(
            region_of("https://abc.execute-api.eu-west-1.amazonaws.com/prod").as_deref(),
            Some("eu-west-1")
        );
        assert_eq!(region_of("http://127.0.0.1:8080/dev"), None);
    }

    /// Answers from a script, counting the calls.
    #[derive(Debug, Default, Clone)]
    struct ScriptedProvider {
        answers: Arc<Mutex<Vec<Result<aws_credential_types::Credentials, String>>>>,
        calls: Arc<std::sync::atomic::AtomicUsize>,
    }

    impl ProvideCredentials for ScriptedProvider {
        fn provide_credentials<'a>(
            &'a self,
        ) -> aws_credential_types::provider::future::ProvideCredentials<'a>
        where
            Self: 'a,
        {
            self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let answer = self.answers.lock().unwrap().remove(0);
            aws_credential_types::provider::future::ProvideCredentials::ready(
                answer.map_err(
                    aws_credential_types::provider::error::CredentialsError::provider_error,
                ),
            )
        }
    }

    fn credentials(key: &str, expiry: Option<SystemTime>) -> aws_credential_types::Credentials {
        aws_credential_types::Credentials::new(key, "secret", Some("token".into()), expiry, "test")
    }

    fn scripted_signer(
        answers: Vec<Result<aws_credential_types::Credentials, String>>,
    ) -> (Signer, ScriptedProvider) {
        let provider = ScriptedProvider {
            answers: Arc::new(Mutex::new(answers)),
            ..ScriptedProvider::default()
        };
        let signer = Signer {
            provider: Some(SharedCredentialsProvider::new(provider.clone())),
            region: "eu-west-1".into(),
            current: Mutex::new(None),
            refreshing: tokio::sync::Mutex::new(()),
        };
        (signer, provider)
    }

    /// Makes the cached credentials due for a refresh (as if their refresh time had passed).
    fn make_due(signer: &Signer) {
        let mut current = signer.current.lock().unwrap();
        let old = current.take().unwrap();
        *current = Some(Arc::new(Signing {
            key: DayKey::new(old.key.keys().clone(), "eu-west-1", Timestamp::now()),
            refresh_at: SystemTime::now() - Duration::from_secs(1),
            expires_at: old.expires_at,
        }));
    }

    #[tokio::test]
    async fn credentials_are_cached_and_refreshed_before_they_expire() {
        let in_an_hour = SystemTime::now() + Duration::from_secs(3600);
        let (signer, provider) = scripted_signer(vec![
            Ok(credentials("AKID1", Some(in_an_hour))),
            Ok(credentials("AKID2", Some(in_an_hour))),
        ]);
        for _ in 0..3 {
            let signing = signer.signing(Timestamp::now()).await.unwrap();
            assert_eq!(signing.key.keys().access_key_id, "AKID1");
        }
        assert_eq!(provider.calls.load(std::sync::atomic::Ordering::SeqCst), 1);
        make_due(&signer);
        let signing = signer.signing(Timestamp::now()).await.unwrap();
        assert_eq!(signing.key.keys().access_key_id, "AKID2");
        assert_eq!(provider.calls.load(std::sync::atomic::Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_failed_refresh_keeps_unexpired_credentials_and_fails_without_any() {
        let in_an_hour = SystemTime::now() + Duration::from_secs(3600);
        let (signer, _) = scripted_signer(vec![
            Ok(credentials("AKID1", Some(in_an_hour))),
            Err("the metadata endpoint timed out".into()),
        ]);
        signer.signing(Timestamp::now()).await.unwrap();
        make_due(&signer);
        let kept = signer.signing(Timestamp::now()).await.unwrap();
        assert_eq!(kept.key.keys().access_key_id, "AKID1");

        let (signer, _) = scripted_signer(vec![Err("no credentials anywhere".into())]);
        assert!(matches!(
            signer.signing(Timestamp::now()).await,
            Err(PostOutcome::Retryable(reason)) if reason.starts_with("credentials")
        ));
    }

    #[tokio::test]
    async fn a_session_token_that_would_break_the_request_head_is_refused() {
        let forged = aws_credential_types::Credentials::new(
            "AKID1",
            "secret",
            Some("token\r\nx-injected: 1".into()),
            None,
            "test",
        );
        let (signer, _) = scripted_signer(vec![Ok(forged)]);
        assert!(matches!(
            signer.signing(Timestamp::now()).await,
            Err(PostOutcome::Failed(reason)) if reason == "the session token is not a valid header value"
        ));
        assert!(is_header_value("IQoJb3JpZ2luX2Vj+/=\t x"));
    }

    #[test]
    fn the_payload_is_copied_and_hashed_once_per_distinct_body() {
        let cache = PayloadCache {
            last: Mutex::new(None),
        };
        let (first, hash) = cache.get(b"abc");
        let (again, same) = cache.get(b"abc");
        assert_eq!(first.as_ptr(), again.as_ptr(), "the same buffer is reused");
        assert!(Arc::ptr_eq(&hash, &same));
        let (other, other_hash) = cache.get(b"abd");
        assert_eq!(&other[..], b"abd");
        assert_ne!(hash, other_hash);
        assert_eq!(&*other_hash, sigv4::sha256_hex(b"abd"));
    }
}
