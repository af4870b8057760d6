//! Connecting (docs/authorizer.md § 401, 403 or 500) and the frames every connection may send
//! (docs/protocol.md § Client frames and replies).

use serde_json::{json, Value};

use super::{ensure, is_any_error, is_error};
use crate::ws::{redact, upgrade, Client, Upgrade};
use crate::{claims, fail, refusal_hint, skip, Outcome, Suite};

/// The actions docs/protocol.md promises the `unknown_action` frame lists.
const DOCUMENTED_ACTIONS: &[&str] = &[
    "emit",
    "history",
    "ping",
    "presence",
    "publish",
    "send",
    "subscribe",
    "unsubscribe",
];

pub async fn upgrade_valid_token(suite: &Suite) -> Outcome {
    let client = suite.connect("a", "a client with a valid token").await?;
    client.close().await;
    Ok(())
}

pub async fn upgrade_no_token(suite: &Suite) -> Outcome {
    let url = &suite.outputs.websocket_url;
    expect_refused(suite, url, "without a token", 401).await
}

pub async fn upgrade_bad_token(suite: &Suite) -> Outcome {
    expect_refused(
        suite,
        &suite.url_with_token("not-a-jwt"),
        "with a malformed token",
        401,
    )
    .await?;
    let valid = suite.token("a").await?;
    expect_refused(
        suite,
        &suite.url_with_token(&tamper(&valid)),
        "with a valid token whose signature was altered",
        401,
    )
    .await
}

/// A token the deployment's issuer signed for another audience is authentic but not for this
/// API: Deny, 403 (docs/authorizer.md § 401, 403 or 500). The suite cannot sign one itself.
pub async fn upgrade_foreign_token(suite: &Suite) -> Outcome {
    let Some(foreign_tokens) = &suite.foreign_tokens else {
        return Err(skip(
            "needs --foreign-token-command: a command printing a token the deployment's issuer signed for another audience (e.g. another app client of the same Cognito user pool)",
        ));
    };
    let user = suite.user("a");
    let foreign = foreign_tokens.token(&user).await.map_err(fail)?;
    let how = format!("with the foreign token command's token for {user}");
    match upgrade(&suite.url_with_token(&foreign), suite.settings.deadline).await? {
        Upgrade::Refused(403) => Ok(()),
        Upgrade::Refused(401) => {
            // 401 comes before the audience is looked at: the token was not found authentic.
            let valid = suite.token("a").await.ok();
            let issuers = match (
                claim(&foreign, "iss"),
                valid.map(|token| claim(&token, "iss")),
            ) {
                (foreign_iss, Some(valid_iss)) if foreign_iss != valid_iss => format!(
                    " Its issuer (iss {foreign_iss}) is not the token command's ({valid_iss})."
                ),
                (foreign_iss, _) => format!(" Its issuer is {foreign_iss}."),
            };
            Err(fail(format!(
                "the upgrade {how} was refused with HTTP 401, expected 403: the authorizer did not accept the token's signature or issuer (or it expired), so it never looked at the audience.{issuers} Is the command's token from the same issuer as the token command's, and current? Check the authorizer's log"
            )))
        }
        Upgrade::Refused(got) => Err(fail(format!(
            "the upgrade {how} was refused with HTTP {got}, expected 403 (docs/authorizer.md): {}",
            refusal_hint(got)
        ))),
        Upgrade::Accepted(socket) => {
            // Closed properly: an open connection of this user would count in presence checks.
            Client::new(socket, how.clone(), suite.settings.deadline)
                .close()
                .await;
            let foreign_audience = audience(&foreign);
            let same = match suite.token("a").await {
                Ok(valid) if audience(&valid) == foreign_audience => " But the token command's token has the same audience: the foreign token command must print a token for another audience (another app client).".to_string(),
                _ => String::new(),
            };
            Err(fail(format!(
                "the upgrade {how} (audience {foreign_audience}) was accepted with 101, expected 403: the deployment accepts tokens of another audience. Check the issuer's `audiences` (the module's `issuers`, JWT_AUDIENCES or JWT_ISSUERS): it must list only this API's clients; empty accepts any audience.{same}"
            )))
        }
    }
}

/// A claim of the token as JSON text, for messages (`none` when absent).
fn claim(token: &str, name: &str) -> String {
    match claims(token).map(|claims| claims[name].clone()) {
        Some(Value::Null) | None => "none".into(),
        Some(value) => value.to_string(),
    }
}

/// What the authorizer compares with the issuer's audiences: `aud`, or `client_id` when there
/// is no `aud` (Cognito access tokens).
fn audience(token: &str) -> String {
    let aud = claim(token, "aud");
    if aud == "none" {
        format!("client_id {}", claim(token, "client_id"))
    } else {
        format!("aud {aud}")
    }
}

/// The token with the first character of its signature changed (the last one may carry only
/// padding bits, which some decoders ignore).
fn tamper(token: &str) -> String {
    let Some((signed, signature)) = token.rsplit_once('.') else {
        return format!("{token}x");
    };
    let mut characters = signature.chars();
    let first = characters.next().unwrap_or('A');
    let replacement = if first == 'A' { 'B' } else { 'A' };
    format!("{signed}.{replacement}{}", characters.as_str())
}

async fn expect_refused(suite: &Suite, url: &str, how: &str, status: u16) -> Outcome {
    match upgrade(url, suite.settings.deadline).await? {
        Upgrade::Refused(got) if got == status => Ok(()),
        Upgrade::Refused(got) => Err(fail(format!(
            "the upgrade {how} was refused with HTTP {got}, expected {status} (docs/authorizer.md): {}",
            refusal_hint(got)
        ))),
        Upgrade::Accepted(_) => Err(fail(format!(
            "the upgrade {how} to {} was accepted, expected HTTP {status}: the $connect route must use the JWT authorizer (identity source: the authorization query parameter)",
            redact(url)
        ))),
    }
}

pub async fn ping(suite: &Suite) -> Outcome {
    let mut client = suite.connect("a", "a client").await?;
    client.send_json(&json!({"action": "ping"})).await?;
    let pong = client
        .expect(
            "reply to ping",
            "is the ping route deployed? check the stage's integration errors",
            |frame| frame["type"] == "pong" || is_any_error(frame),
        )
        .await?;
    ensure(pong["type"] == "pong", || {
        format!("ping was answered {pong}, expected {{\"type\":\"pong\",\"connection_id\":…,\"timestamp\":…}}: connection_gone means the connection was not registered at $connect (check the connections table's PutItem in the execution log)")
    })?;
    ensure(
        pong["connection_id"]
            .as_str()
            .is_some_and(|id| !id.is_empty()),
        || format!("the pong frame {pong} has no connection_id string"),
    )?;
    ensure(pong["timestamp"].is_number(), || {
        format!("the pong frame {pong} has no numeric timestamp")
    })?;
    client.close().await;
    Ok(())
}

pub async fn unknown_action(suite: &Suite) -> Outcome {
    let mut client = suite.connect("a", "a client").await?;
    client
        .send_json(&json!({"action": "conformance-no-such-action"}))
        .await?;
    let frame = client
        .expect(
            "reply to an unknown action",
            "is the $default route deployed with its template?",
            |frame| frame["type"] == "error" || frame["message"].is_string(),
        )
        .await?;
    ensure(is_error(&frame, "unknown_action"), || {
        format!("an unknown action was answered {frame}, expected {{\"type\":\"error\",\"error\":\"unknown_action\",…}} (docs/protocol.md § Error frames): is the $default route's template the one in mapping-templates/?")
    })?;
    ensure(frame["message"].is_string(), || {
        format!("the unknown_action frame {frame} has no message")
    })?;
    let listed: Vec<&str> = frame["actions"]
        .as_array()
        .map(|actions| actions.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let missing: Vec<&&str> = DOCUMENTED_ACTIONS
        .iter()
        .filter(|action| !listed.contains(action))
        .collect();
    ensure(missing.is_empty(), || {
        format!("the unknown_action frame lists the actions {listed:?}, without {missing:?}: the `actions` stage variable comes from routes.json; is every route deployed?")
    })?;
    client.close().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{audience, tamper};
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;

    fn token(claims: &str) -> String {
        format!("h.{}.s", URL_SAFE_NO_PAD.encode(claims))
    }

    #[test]
    fn the_audience_is_aud_else_client_id() {
        assert_eq!(audience(&token(r#"{"aud":"app"}"#)), "aud \"app\"");
        assert_eq!(audience(&token(r#"{"aud":["a","b"]}"#)), r#"aud ["a","b"]"#);
        assert_eq!(audience(&token(r#"{"client_id":"c"}"#)), "client_id \"c\"");
        assert_eq!(audience("not-a-jwt"), "client_id none");
    }

    #[test]
    fn tampering_changes_only_the_signature() {
        assert_eq!(tamper("h.p.Asig"), "h.p.Bsig");
        assert_eq!(tamper("h.p.xsig"), "h.p.Asig");
    }
}
