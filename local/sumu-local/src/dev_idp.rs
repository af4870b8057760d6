//! The development identity provider: one ES256 (P-256) key pair, persisted so tokens minted by
//! `sumu-local token` (a separate process) verify against the JWKS the running emulator serves,
//! and survive restarts. The default authorizer configuration trusts this issuer only.

use std::path::Path;
use std::time::Duration;

use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use sumu_wire::channels::DEFAULT_GRANTS_CLAIM;
use sumu_wire::Grants;

/// The `iss` of development tokens.
pub const DEV_ISSUER: &str = "sumu-local";
/// The `aud` of development tokens, and the audience the default configuration requires.
pub const DEV_AUDIENCE: &str = "sumu-local";
/// Where the running emulator serves the JWKS (same port as the APIs).
pub const JWKS_PATH: &str = "/.well-known/jwks.json";

#[derive(Debug, thiserror::Error)]
pub enum IdpError {
    #[error("key file {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("key file {path} does not hold a P-256 PKCS#8 key: {reason}")]
    BadKey { path: String, reason: String },
    #[error("cannot generate a key pair")]
    Generate,
    #[error("cannot sign a token: {0}")]
    Sign(#[from] jsonwebtoken::errors::Error),
}

/// A signing key and its public JWK.
pub struct DevIdentityProvider {
    pkcs8: Vec<u8>,
    kid: String,
    x: String,
    y: String,
}

impl std::fmt::Debug for DevIdentityProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevIdentityProvider")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl DevIdentityProvider {
    /// A fresh in-memory key pair (tests; each call is a different, "foreign" issuer key).
    pub fn generate() -> Result<DevIdentityProvider, IdpError> {
        let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
            .map_err(|_| IdpError::Generate)?;
        let pkcs8 = pair.to_pkcs8v1().map_err(|_| IdpError::Generate)?;
        Self::from_pkcs8(pkcs8.as_ref(), "generated")
    }

    /// Loads the key from `path`, creating it (mode 0600) when absent.
    pub fn load_or_create(path: &Path) -> Result<DevIdentityProvider, IdpError> {
        let shown = path.display().to_string();
        let io = |source| IdpError::Io {
            path: shown.clone(),
            source,
        };
        match std::fs::read(path) {
            Ok(pkcs8) => Self::from_pkcs8(&pkcs8, &shown),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                let provider = Self::generate()?;
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent).map_err(io)?;
                }
                write_private(path, &provider.pkcs8).map_err(io)?;
                Ok(provider)
            }
            Err(error) => Err(io(error)),
        }
    }

    fn from_pkcs8(pkcs8: &[u8], shown: &str) -> Result<DevIdentityProvider, IdpError> {
        let pair =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8).map_err(|error| {
                IdpError::BadKey {
                    path: shown.to_string(),
                    reason: error.to_string(),
                }
            })?;
        // Uncompressed SEC1 point: 0x04 ‖ x (32 bytes) ‖ y (32 bytes).
        let point = pair.public_key().as_ref();
        let (x, y) = match point {
            [0x04, rest @ ..] if rest.len() == 64 => rest.split_at(32),
            _ => {
                return Err(IdpError::BadKey {
                    path: shown.to_string(),
                    reason: "unexpected public key encoding".into(),
                })
            }
        };
        let kid = format!("dev-{}", &URL_SAFE_NO_PAD.encode(x)[..12]);
        Ok(DevIdentityProvider {
            pkcs8: pkcs8.to_vec(),
            kid,
            x: URL_SAFE_NO_PAD.encode(x),
            y: URL_SAFE_NO_PAD.encode(y),
        })
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// `{"keys":[…]}` with the public key.
    pub fn jwks(&self) -> Value {
        json!({"keys": [{
            "kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig",
            "kid": self.kid, "x": self.x, "y": self.y,
        }]})
    }

    /// A token for `sub`, valid for `ttl` from `now` (epoch seconds), from [`DEV_ISSUER`] for
    /// [`DEV_AUDIENCE`], with no channel grant.
    pub fn mint(&self, sub: &str, ttl: Duration, now: i64) -> Result<String, IdpError> {
        self.mint_with_grants(sub, &Grants::default(), ttl, now)
    }

    /// Like [`DevIdentityProvider::mint`], with these channel grants in the default grants
    /// claim (`"channels": {"subscribe":[…],"publish":[…]}`; no claim when there are none).
    pub fn mint_with_grants(
        &self,
        sub: &str,
        grants: &Grants,
        ttl: Duration,
        now: i64,
    ) -> Result<String, IdpError> {
        let ttl = i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX);
        let mut claims = json!({
            "iss": DEV_ISSUER, "aud": DEV_AUDIENCE, "sub": sub,
            "iat": now, "nbf": now, "exp": now.saturating_add(ttl),
        });
        if !grants.is_empty() {
            claims[DEFAULT_GRANTS_CLAIM] = json!(grants);
        }
        self.mint_claims(&claims)
    }

    /// A token with exactly these claims (tests use it for expired or foreign tokens).
    pub fn mint_claims(&self, claims: &Value) -> Result<String, IdpError> {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        let key = EncodingKey::from_ec_der(&self.pkcs8);
        Ok(jsonwebtoken::encode(&header, claims, &key)?)
    }
}

#[cfg(unix)]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(bytes)
}

#[cfg(not(unix))]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::write(path, bytes)
}

/// Parses `30s`, `15m`, `1h`, `2d` or plain seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(index) => text.split_at(index),
        None => (text, "s"),
    };
    let value: u64 = number
        .parse()
        .map_err(|_| format!("invalid duration {text:?} (examples: 90s, 15m, 1h, 2d)"))?;
    let seconds = match unit {
        "ms" => return Ok(Duration::from_millis(value)),
        "s" => value,
        "m" => value.saturating_mul(60),
        "h" => value.saturating_mul(3600),
        "d" => value.saturating_mul(86_400),
        _ => {
            return Err(format!(
                "invalid duration unit in {text:?} (ms, s, m, h, d)"
            ))
        }
    };
    Ok(Duration::from_secs(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{DecodingKey, Validation};

    #[test]
    fn minted_tokens_verify_with_the_served_jwk() {
        let idp = DevIdentityProvider::generate().unwrap();
        let token = idp
            .mint("alice", Duration::from_secs(3600), 1_900_000_000)
            .unwrap();
        let jwk: jsonwebtoken::jwk::Jwk =
            serde_json::from_value(idp.jwks()["keys"][0].clone()).unwrap();
        let key = DecodingKey::from_jwk(&jwk).unwrap();
        let mut validation = Validation::new(Algorithm::ES256);
        validation.set_audience(&[DEV_AUDIENCE]);
        validation.set_issuer(&[DEV_ISSUER]);
        validation.validate_exp = false;
        let data = jsonwebtoken::decode::<Value>(&token, &key, &validation).unwrap();
        assert_eq!(data.claims["sub"], "alice");
        assert_eq!(data.claims["exp"], 1_900_003_600_i64);
        assert_eq!(data.header.kid.as_deref(), Some(idp.kid()));
    }

    fn decoded(idp: &DevIdentityProvider, token: &str) -> Value {
        let jwk: jsonwebtoken::jwk::Jwk =
            serde_json::from_value(idp.jwks()["keys"][0].clone()).unwrap();
        let mut validation = Validation::new(Algorithm::ES256);
        validation.set_audience(&[DEV_AUDIENCE]);
        validation.validate_exp = false;
        jsonwebtoken::decode::<Value>(token, &DecodingKey::from_jwk(&jwk).unwrap(), &validation)
            .unwrap()
            .claims
    }

    #[test]
    fn grants_go_into_the_channels_claim() {
        let idp = DevIdentityProvider::generate().unwrap();
        let grants = Grants {
            subscribe: vec!["room/*".parse().unwrap(), "user/alice".parse().unwrap()],
            publish: vec!["room/*".parse().unwrap()],
        };
        let token = idp
            .mint_with_grants("alice", &grants, Duration::from_secs(60), 1_900_000_000)
            .unwrap();
        assert_eq!(
            decoded(&idp, &token)["channels"],
            json!({"subscribe": ["room/*", "user/alice"], "publish": ["room/*"]})
        );
        let only_subscribe = Grants {
            subscribe: vec!["*".parse().unwrap()],
            publish: vec![],
        };
        let token = idp
            .mint_with_grants(
                "bob",
                &only_subscribe,
                Duration::from_secs(60),
                1_900_000_000,
            )
            .unwrap();
        assert_eq!(
            decoded(&idp, &token)["channels"],
            json!({"subscribe": ["*"], "publish": []})
        );
    }

    #[test]
    fn no_grants_means_no_claim() {
        let idp = DevIdentityProvider::generate().unwrap();
        let token = idp
            .mint("alice", Duration::from_secs(60), 1_900_000_000)
            .unwrap();
        assert!(decoded(&idp, &token).get("channels").is_none());
    }

    #[test]
    fn the_key_file_is_created_once_and_reused() {
        let dir = std::env::temp_dir().join(format!("sumu-idp-{}", uuid::Uuid::new_v4()));
        let path = dir.join("nested/key.p8");
        let first = DevIdentityProvider::load_or_create(&path).unwrap();
        let second = DevIdentityProvider::load_or_create(&path).unwrap();
        assert_eq!(first.jwks(), second.jwks());
        std::fs::write(&path, b"garbage").unwrap();
        assert!(matches!(
            DevIdentityProvider::load_or_create(&path),
            Err(IdpError::BadKey { .. })
        ));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
        assert_eq!(parse_duration("90").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("1y").is_err());
    }
}
