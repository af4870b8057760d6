//! Connecting (docs/authorizer.md § 401, 403 or 500) and the frames every connection may send
//! (docs/protocol.md § Client frames and replies).

use serde_json::{json, Value};

use super::{ensure, is_any_error, is_error};
use crate::ws::{redact, upgrade, Upgrade};
use crate::{fail, refusal_hint, Outcome, Suite};

/// The actions docs/protocol.md promises the `unknown_action` frame lists.
const DOCUMENTED_ACTIONS: &[&str] = &[
    "emit",
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
    use super::tamper;

    #[test]
    fn tampering_changes_only_the_signature() {
        assert_eq!(tamper("h.p.Asig"), "h.p.Bsig");
        assert_eq!(tamper("h.p.xsig"), "h.p.Asig");
    }
}
