//! Checks on the claims of a token whose signature has been verified.

use std::time::Duration;

use serde_json::{Map, Value};

/// Why the claims are refused. Time problems mean "get a fresh token" (401); audience and
/// principal problems mean "this token is not for this API" (403).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClaimError {
    #[error("`exp` is missing or not a number")]
    MissingExpiry,
    #[error("token expired")]
    Expired,
    #[error("`nbf` is not a number")]
    BadNotBefore,
    #[error("token not valid yet (`nbf` in the future)")]
    NotYetValid,
    #[error("`iat` is not a number")]
    BadIssuedAt,
    #[error("token issued in the future (`iat`)")]
    IssuedInFuture,
    #[error("audience not accepted")]
    WrongAudience,
}

/// `exp` (required), `nbf` and `iat` (when present) against `now` (seconds since the epoch).
pub fn check_times(
    claims: &Map<String, Value>,
    now: u64,
    leeway: Duration,
) -> Result<(), ClaimError> {
    let now = now as f64;
    let leeway = leeway.as_secs_f64();
    let exp = claims
        .get("exp")
        .and_then(Value::as_f64)
        .ok_or(ClaimError::MissingExpiry)?;
    if exp + leeway <= now {
        return Err(ClaimError::Expired);
    }
    if let Some(nbf) = claims.get("nbf") {
        let nbf = nbf.as_f64().ok_or(ClaimError::BadNotBefore)?;
        if nbf > now + leeway {
            return Err(ClaimError::NotYetValid);
        }
    }
    if let Some(iat) = claims.get("iat") {
        let iat = iat.as_f64().ok_or(ClaimError::BadIssuedAt)?;
        if iat > now + leeway {
            return Err(ClaimError::IssuedInFuture);
        }
    }
    Ok(())
}

/// `aud` (a string or an array of strings) must name one accepted audience; when the token has
/// no `aud`, `client_id` (Cognito access tokens) is used instead. No accepted audiences
/// configured means any audience.
pub fn check_audience(claims: &Map<String, Value>, accepted: &[String]) -> Result<(), ClaimError> {
    if accepted.is_empty() {
        return Ok(());
    }
    let accepts = |value: &Value| {
        value
            .as_str()
            .is_some_and(|aud| accepted.iter().any(|a| a == aud))
    };
    let matched = match claims.get("aud") {
        Some(Value::Array(auds)) => auds.iter().any(accepts),
        Some(aud) => accepts(aud),
        None => claims.get("client_id").is_some_and(accepts),
    };
    if matched {
        Ok(())
    } else {
        Err(ClaimError::WrongAudience)
    }
}

/// The principal: a non-empty string, or an integer written in decimal.
pub fn principal(claims: &Map<String, Value>, claim: &str) -> Option<String> {
    match claims.get(claim)? {
        Value::String(text) if !text.is_empty() => Some(text.clone()),
        Value::Number(number) if number.is_i64() || number.is_u64() => Some(number.to_string()),
        _ => None,
    }
}

/// The selected claims as API Gateway accepts them in an authorizer context: strings, numbers
/// and booleans as they are; arrays and objects as their JSON text; null and absent skipped.
pub fn context(claims: &Map<String, Value>, selected: &[String]) -> Map<String, Value> {
    selected
        .iter()
        .filter_map(|name| {
            let value = match claims.get(name)? {
                Value::Null => return None,
                scalar @ (Value::String(_) | Value::Number(_) | Value::Bool(_)) => scalar.clone(),
                composite => Value::String(composite.to_string()),
            };
            Some((name.clone(), value))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claims(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            _ => unreachable!(),
        }
    }

    const NOW: u64 = 1_700_000_000;
    const LEEWAY: Duration = Duration::from_secs(30);

    #[test]
    fn times_with_leeway() {
        let ok = |c: Value| check_times(&claims(c), NOW, LEEWAY);
        assert_eq!(ok(json!({"exp": NOW + 1})), Ok(()));
        assert_eq!(ok(json!({"exp": NOW - 10})), Ok(()), "within leeway");
        assert_eq!(ok(json!({"exp": NOW - 31})), Err(ClaimError::Expired));
        assert_eq!(ok(json!({})), Err(ClaimError::MissingExpiry));
        assert_eq!(
            ok(json!({"exp": "tomorrow"})),
            Err(ClaimError::MissingExpiry)
        );
        assert_eq!(ok(json!({"exp": NOW + 60, "nbf": NOW + 10})), Ok(()));
        assert_eq!(
            ok(json!({"exp": NOW + 600, "nbf": NOW + 60})),
            Err(ClaimError::NotYetValid)
        );
        assert_eq!(
            ok(json!({"exp": NOW + 600, "nbf": "x"})),
            Err(ClaimError::BadNotBefore)
        );
        assert_eq!(
            ok(json!({"exp": NOW + 600, "iat": NOW + 60})),
            Err(ClaimError::IssuedInFuture)
        );
        assert_eq!(ok(json!({"exp": NOW + 600, "iat": NOW})), Ok(()));
    }

    #[test]
    fn audience_string_array_client_id_and_any() {
        let accepted = vec!["app".to_string()];
        let check = |c: Value| check_audience(&claims(c), &accepted);
        assert_eq!(check(json!({"aud": "app"})), Ok(()));
        assert_eq!(check(json!({"aud": ["other", "app"]})), Ok(()));
        assert_eq!(check(json!({"client_id": "app"})), Ok(()));
        assert_eq!(
            check(json!({"aud": "other", "client_id": "app"})),
            Err(ClaimError::WrongAudience)
        );
        assert_eq!(
            check(json!({"aud": ["other"]})),
            Err(ClaimError::WrongAudience)
        );
        assert_eq!(check(json!({})), Err(ClaimError::WrongAudience));
        assert_eq!(check_audience(&claims(json!({"aud": "x"})), &[]), Ok(()));
    }

    #[test]
    fn context_keeps_scalars_and_stringifies_the_rest() {
        let c = claims(
            json!({"email": "a@b", "n": 3, "ok": true, "groups": ["a","b"], "obj": {"k": 1}, "nil": null}),
        );
        let selected: Vec<String> = ["email", "n", "ok", "groups", "obj", "nil", "absent"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(
            Value::Object(context(&c, &selected)),
            json!({"email": "a@b", "n": 3, "ok": true, "groups": "[\"a\",\"b\"]", "obj": "{\"k\":1}"})
        );
    }

    #[test]
    fn principal_is_a_string_or_integer() {
        let c = claims(json!({"sub": "u1", "uid": 42, "empty": "", "f": 1.5, "arr": []}));
        assert_eq!(principal(&c, "sub").as_deref(), Some("u1"));
        assert_eq!(principal(&c, "uid").as_deref(), Some("42"));
        assert_eq!(principal(&c, "empty"), None);
        assert_eq!(principal(&c, "f"), None);
        assert_eq!(principal(&c, "arr"), None);
        assert_eq!(principal(&c, "missing"), None);
    }
}
