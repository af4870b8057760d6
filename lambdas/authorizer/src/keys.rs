//! Turning a published key document into verification keys: a JWKS (`{"keys":[…]}` with RSA,
//! EC P-256/P-384 and Ed25519 `OKP` keys) or a Google/Firebase x509 certificate map
//! (`{"kid":"-----BEGIN CERTIFICATE-----…"}`). The format is detected from the document.
//!
//! Symmetric (`oct`) keys in a published document are ignored: a key anyone can download must
//! never become an HMAC secret.

use std::collections::HashMap;
use std::sync::Arc;

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::Value;

/// A public key and the algorithms it may verify.
#[derive(Debug)]
pub struct VerificationKey {
    pub key: DecodingKey,
    pub algorithms: Vec<Algorithm>,
}

impl VerificationKey {
    pub fn allows(&self, algorithm: Algorithm) -> bool {
        self.algorithms.contains(&algorithm)
    }
}

/// The usable keys of one issuer, by `kid`.
#[derive(Debug, Default)]
pub struct KeySet {
    by_kid: HashMap<String, Arc<VerificationKey>>,
    /// Keys published without a `kid`; tokens without a `kid` are tried against them.
    without_kid: Vec<Arc<VerificationKey>>,
}

impl KeySet {
    /// The candidate keys for a token header's `kid`.
    pub fn candidates(&self, kid: Option<&str>) -> Vec<Arc<VerificationKey>> {
        match kid {
            Some(kid) => self.by_kid.get(kid).cloned().into_iter().collect(),
            None => self.without_kid.clone(),
        }
    }

    pub fn len(&self) -> usize {
        self.by_kid.len() + self.without_kid.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeyDocumentError {
    #[error("key document is not JSON: {0}")]
    NotJson(String),
    #[error("key document is neither a JWKS nor an x509 certificate map")]
    UnknownFormat,
    #[error("key document holds no usable key")]
    NoUsableKey,
}

/// Parses a JWKS or an x509 certificate map. Keys that cannot be used are skipped (and logged);
/// a document without any usable key is an error, so it never replaces a good cached set.
pub fn parse_key_document(body: &[u8]) -> Result<KeySet, KeyDocumentError> {
    let document: Value = serde_json::from_slice(body)
        .map_err(|error| KeyDocumentError::NotJson(error.to_string()))?;
    let Value::Object(object) = document else {
        return Err(KeyDocumentError::UnknownFormat);
    };
    let mut set = KeySet::default();
    if let Some(Value::Array(keys)) = object.get("keys") {
        for entry in keys {
            match jwk_to_key(entry) {
                Ok((kid, key)) => set.insert(kid, key),
                Err(reason) => tracing::warn!(reason, "skipping a JWKS key"),
            }
        }
    } else if object.values().all(Value::is_string) {
        for (kid, pem) in &object {
            match certificate_to_key(pem.as_str().unwrap_or_default()) {
                Ok(key) => set.insert(Some(kid.clone()), key),
                Err(reason) => tracing::warn!(kid, reason, "skipping an x509 certificate"),
            }
        }
    } else {
        return Err(KeyDocumentError::UnknownFormat);
    }
    if set.is_empty() {
        return Err(KeyDocumentError::NoUsableKey);
    }
    Ok(set)
}

impl KeySet {
    fn insert(&mut self, kid: Option<String>, key: VerificationKey) {
        let key = Arc::new(key);
        match kid {
            Some(kid) => {
                self.by_kid.insert(kid, key);
            }
            None => self.without_kid.push(key),
        }
    }
}

fn jwk_to_key(entry: &Value) -> Result<(Option<String>, VerificationKey), &'static str> {
    let jwk: Jwk =
        serde_json::from_value(entry.clone()).map_err(|_| "unreadable or unsupported JWK")?;
    if matches!(&jwk.common.public_key_use, Some(usage) if *usage != PublicKeyUse::Signature) {
        return Err("key is not for signatures (`use` is not `sig`)");
    }
    let family_algorithms: Vec<Algorithm> = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => vec![
            Algorithm::RS256,
            Algorithm::RS384,
            Algorithm::RS512,
            Algorithm::PS256,
            Algorithm::PS384,
            Algorithm::PS512,
        ],
        AlgorithmParameters::EllipticCurve(params) => match params.curve {
            EllipticCurve::P256 => vec![Algorithm::ES256],
            EllipticCurve::P384 => vec![Algorithm::ES384],
            _ => return Err("unsupported EC curve"),
        },
        AlgorithmParameters::OctetKeyPair(params) => match params.curve {
            EllipticCurve::Ed25519 => vec![Algorithm::EdDSA],
            _ => return Err("unsupported OKP curve"),
        },
        AlgorithmParameters::OctetKey(_) => return Err("symmetric key in a public document"),
        _ => return Err("unsupported key type"),
    };
    // A key that names its algorithm verifies only that one.
    let algorithms = match jwk.common.key_algorithm {
        Some(named) => {
            let named = Algorithm::try_from(named)
                .map_err(|_| "key algorithm is not a signature algorithm")?;
            if !family_algorithms.contains(&named) {
                return Err("key algorithm does not match its key type");
            }
            vec![named]
        }
        None => family_algorithms,
    };
    let key = DecodingKey::from_jwk(&jwk).map_err(|_| "invalid key material")?;
    Ok((
        jwk.common.key_id.clone(),
        VerificationKey { key, algorithms },
    ))
}

fn certificate_to_key(pem: &str) -> Result<VerificationKey, &'static str> {
    if !pem.trim_start().starts_with("-----BEGIN CERTIFICATE-----") {
        return Err("value is not a PEM certificate");
    }
    let pem = pem.as_bytes();
    if let Ok(key) = DecodingKey::from_rsa_pem(pem) {
        return Ok(VerificationKey {
            key,
            algorithms: vec![
                Algorithm::RS256,
                Algorithm::RS384,
                Algorithm::RS512,
                Algorithm::PS256,
                Algorithm::PS384,
                Algorithm::PS512,
            ],
        });
    }
    if let Ok(key) = DecodingKey::from_ec_pem(pem) {
        // The curve is not recorded; a signature made on the other curve simply fails to verify.
        return Ok(VerificationKey {
            key,
            algorithms: vec![Algorithm::ES256, Algorithm::ES384],
        });
    }
    if let Ok(key) = DecodingKey::from_ed_pem(pem) {
        return Ok(VerificationKey {
            key,
            algorithms: vec![Algorithm::EdDSA],
        });
    }
    Err("certificate public key is not RSA, EC or Ed25519")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symmetric_and_encryption_keys_are_ignored() {
        let document = br#"{"keys":[
            {"kty":"oct","kid":"h","k":"c2VjcmV0"},
            {"kty":"OKP","crv":"Ed25519","kid":"enc","use":"enc","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"},
            {"kty":"OKP","crv":"Ed25519","kid":"sig","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}
        ]}"#;
        let set = parse_key_document(document).unwrap();
        assert_eq!(set.len(), 1);
        assert!(set.candidates(Some("h")).is_empty());
        assert!(set.candidates(Some("enc")).is_empty());
        assert!(set.candidates(Some("sig"))[0].allows(Algorithm::EdDSA));
    }

    #[test]
    fn documents_without_usable_keys_are_errors() {
        assert!(matches!(
            parse_key_document(b"not json"),
            Err(KeyDocumentError::NotJson(_))
        ));
        assert!(matches!(
            parse_key_document(br#"{"keys":[]}"#),
            Err(KeyDocumentError::NoUsableKey)
        ));
        assert!(matches!(
            parse_key_document(br#"{"a":1}"#),
            Err(KeyDocumentError::UnknownFormat)
        ));
        assert!(matches!(
            parse_key_document(br#"{"kid":"not a certificate"}"#),
            Err(KeyDocumentError::NoUsableKey)
        ));
    }
}
