#![doc = "sumu's conformance suite: black-box checks of the public contract (docs/protocol.md, docs/channels.md, docs/presence.md) through public interfaces only."]
//! The suite sees a deployment as a client and a back end do: the WebSocket URL with tokens
//! from a command the user supplies, the notifications queue and topic it writes to, the
//! messages queue (and the pusher's dead-letter queue) it reads. It reads no table, calls no
//! management API and assumes nothing about how the deployment is built, so the same checks run
//! against sumu-local and against AWS. README.md says what each check means and what it needs.

pub mod backend;
pub mod checks;
pub mod outputs;
pub mod tokens;
pub mod verdict;
pub mod ws;

use std::time::Duration;

use aws_config::SdkConfig;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

pub use backend::USER_PREFIX;
pub use verdict::{fail, skip, Outcome, Verdict};

use crate::backend::Backend;
use crate::outputs::Outputs;
use crate::tokens::TokenCommand;
use crate::ws::{upgrade, Client, Upgrade};

/// The channels the suite subscribes to and emits on lie below `conformance/`: the deployment
/// must grant `conformance/*` to subscribe and to publish (static grants, or the tokens' claim).
pub const GRANTED_PREFIX: &str = "conformance";

/// The channels the suite must be refused lie below `conformance-denied/`: no grant may cover it.
pub const DENIED_PREFIX: &str = "conformance-denied";

/// The roles of the test users; each is one user (one token) per run.
pub const ROLES: &[&str] = &["a", "b", "watched", "events", "leaver"];

/// How the suite runs.
#[derive(Debug, Clone)]
pub struct Settings {
    /// How long anything that should arrive may take.
    pub deadline: Duration,
    /// How long a "nothing arrives" check listens (a bounded wait: later arrivals are not seen).
    pub quiet: Duration,
    /// Run the broadcast check; `None`: only against sumu-local (a loopback URL).
    pub broadcast: Option<bool>,
    /// The deployment's `channels.max_subscriptions_per_connection`.
    pub max_subscriptions: u32,
    /// Names this run's channels and messages.
    pub run_id: String,
    /// The token claim the deployment takes as the user id (its `JWT_PRINCIPAL_CLAIM`).
    pub principal_claim: String,
}

impl Settings {
    pub fn new(run_id: &str) -> Settings {
        Settings {
            deadline: Duration::from_secs(30),
            quiet: Duration::from_secs(3),
            broadcast: None,
            max_subscriptions: 100,
            run_id: run_id.to_string(),
            principal_claim: "sub".into(),
        }
    }
}

/// A fresh run id: 8 hex characters (user names and channels stay short and valid).
pub fn new_run_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..8].to_string()
}

/// The name of the test user with `role`: what `{user}` becomes in the token command. The
/// same in every run, so the users can be created once in an identity provider; the user id
/// sumu sees is the token's principal claim ([`Suite::principal`]), which may differ (Cognito's
/// `sub` is a UUID).
pub fn user_name(role: &str) -> String {
    format!("{USER_PREFIX}{role}")
}

/// A check's name and what it proves (`--list`).
pub struct CheckInfo {
    pub name: &'static str,
    pub proves: &'static str,
}

const fn check(name: &'static str, proves: &'static str) -> CheckInfo {
    CheckInfo { name, proves }
}

/// Every check, in the order they run.
pub const CHECKS: &[CheckInfo] = &[
    check("upgrade-valid-token", "a valid token upgrades with 101"),
    check("upgrade-no-token", "no token: the upgrade is refused with 401"),
    check("upgrade-bad-token", "a malformed token and a token with a tampered signature: 401"),
    check("upgrade-foreign-token", "an authentic token for another audience: 403 (needs --foreign-token-command)"),
    check("ping", "{\"action\":\"ping\"} answers a pong frame with the connection_id and a timestamp"),
    check("unknown-action", "an unknown action answers the unknown_action error frame with the list of actions"),
    check("send", "`send` reaches the messages queue: the message as the body, user_id, connection_id, timestamp, source = apigw.route.send"),
    check("publish", "`publish` reaches the messages queue through the messages topic: same four attributes, source = apigw.route.publish"),
    check("invalid-message", "`send` without a message object and `publish` with a string answer the invalid_message error frame"),
    check("presence-events", "a new connection's ONLINE and its close's OFFLINE reach the messages queue (presence_destination topic or queue)"),
    check("notify-user", "a notification request naming a user, sent to the notifications queue, reaches each of the user's connections with `data` as the frame"),
    check("notify-user-topic", "the same through the notifications topic"),
    check("notify-connection", "a notification request naming a connection id reaches that connection and not the user's other one"),
    check("notify-broadcast", "a request naming no users or connections reaches every connection (opt-in on a deployment: --broadcast)"),
    check("channel-publication", "a back end's publication reaches the subscribers of the channel and of a pattern above it, as a publication frame with one id and no `from`"),
    check("unsubscribe", "subscribe answers `subscribed`, unsubscribe `unsubscribed`; an unsubscribed connection gets no more publications"),
    check("emit", "an emit reaches every other subscriber with `from` = the sender's user id, and not the sending connection"),
    check("subscribe-forbidden", "subscribing to a channel no grant covers answers forbidden, with the channel as sent"),
    check("invalid-channel", "an invalid channel name or a non-string channel answers invalid_channel, with the channel as sent"),
    check("emit-forbidden", "an emit on a channel without a publish grant answers forbidden to the sender"),
    check("emit-invalid-message", "an emit without data answers invalid_message to the sender"),
    check("too-many-subscriptions", "with the cap of --max-subscriptions (default 100) subscriptions, one more answers too_many_subscriptions"),
    check("presence-query", "{\"action\":\"presence\"} answers ONLINE with the connection count, and OFFLINE 0 for a user never seen"),
    check("channel-presence", "{\"action\":\"presence\",\"channel\":…} lists the users subscribed to the channel itself with their connection count; a pattern subscriber is not a member"),
    check("notify-disconnect", "a notification request with \"action\":\"disconnect\" and data: the connection gets the data, then close 1000; the user's other connection stays"),
    check("frame-too-large", "a 40 KB frame closes the connection with 1009"),
    check("message-too-large", "a 200 KB message in 16 KB frames closes the connection with 1009"),
    check("binary-frame", "a binary frame closes the connection with 1003"),
    check("notification-too-large", "a notification request with data over 128 KB goes to the pusher's dead-letter queue (rejection_reason = data_too_large) and reaches no client"),
    check("cleanup-after-close", "after a close, presence says OFFLINE, a request naming the closed and a live connection reaches the live one, and the next request still works"),
    check("typed-frames", "a back end's data that looks like sumu's frames (error, subscribed, publication, ack…) arrives as one message frame around it, and the subscription still works"),
    check("refs", "subscribe, unsubscribe and presence echo their ref; a bad ref (quote, backslash, 65 characters, a number, an object) answers invalid_ref without one and subscribes nothing"),
    check("emit-ack", "an emit with a ref is acked with its publication's id; exclude_connections keeps it from the named connection; an emit with a bad ref answers invalid_ref and reaches nobody"),
];

/// The suite, bound to one deployment.
pub struct Suite {
    pub outputs: Outputs,
    pub settings: Settings,
    pub tokens: TokenCommand,
    /// Tokens the deployment's issuer signed for another audience (`--foreign-token-command`);
    /// without them `upgrade-foreign-token` is skipped.
    pub foreign_tokens: Option<TokenCommand>,
    pub backend: Backend,
}

impl Suite {
    pub fn new(
        outputs: Outputs,
        settings: Settings,
        tokens: TokenCommand,
        aws: &SdkConfig,
    ) -> Suite {
        Suite {
            outputs,
            settings,
            tokens,
            foreign_tokens: None,
            backend: Backend::new(aws),
        }
    }

    /// The suite with a command printing tokens for another audience (`upgrade-foreign-token`).
    pub fn with_foreign_tokens(mut self, foreign_tokens: TokenCommand) -> Suite {
        self.foreign_tokens = Some(foreign_tokens);
        self
    }

    /// The name the token command is given for `role`.
    pub fn user(&self, role: &str) -> String {
        user_name(role)
    }

    /// The user id sumu gives `role`'s connections: the principal claim of its token, read
    /// (not verified: the deployment does that) from the token's payload.
    pub async fn principal(&self, role: &str) -> Result<String, Verdict> {
        let token = self.token(role).await?;
        let claim = &self.settings.principal_claim;
        let payload = claims(&token);
        let principal = match payload.as_ref().map(|claims| &claims[claim.as_str()]) {
            Some(serde_json::Value::String(text)) if !text.is_empty() => text.clone(),
            Some(serde_json::Value::Number(number)) if number.is_i64() || number.is_u64() => {
                number.to_string()
            }
            _ => {
                return Err(fail(format!(
                    "the token of {} has no usable {claim:?} claim in its payload: pass --principal-claim with the deployment's JWT_PRINCIPAL_CLAIM",
                    self.user(role)
                )))
            }
        };
        self.backend.remember_principal(&principal);
        Ok(principal)
    }

    /// A channel below `conformance/` for this run.
    pub fn channel(&self, name: &str) -> String {
        format!("{GRANTED_PREFIX}/{}/{name}", self.settings.run_id)
    }

    /// A value no other check or run sends: checks find their frames and messages by it.
    pub fn nonce(&self, check: &str) -> String {
        format!(
            "{USER_PREFIX}{}-{check}-{}",
            self.settings.run_id,
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        )
    }

    pub async fn token(&self, role: &str) -> Result<String, Verdict> {
        self.tokens.token(&self.user(role)).await.map_err(fail)
    }

    pub fn url_with_token(&self, token: &str) -> String {
        let separator = if self.outputs.websocket_url.contains('?') {
            '&'
        } else {
            '?'
        };
        format!(
            "{}{separator}authorization={token}",
            self.outputs.websocket_url
        )
    }

    /// Connects a client of the user with `role`; `label` names it in messages.
    pub async fn connect(&self, role: &str, label: &str) -> Result<Client, Verdict> {
        let token = self.token(role).await?;
        let url = self.url_with_token(&token);
        match upgrade(&url, self.settings.deadline).await? {
            Upgrade::Accepted(socket) => Ok(Client::new(
                socket,
                format!("{label} ({})", self.user(role)),
                self.settings.deadline,
            )),
            Upgrade::Refused(status) => Err(fail(format!(
                "the upgrade of {} with the token command's token was refused with HTTP {status} (expected 101): {}",
                self.user(role),
                refusal_hint(status)
            ))),
        }
    }
}

/// A token's payload, decoded but not verified (the deployment does that); `None` when it is
/// not a JWT with a JSON payload.
pub fn claims(token: &str) -> Option<serde_json::Value> {
    let payload = token.split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// What a refused upgrade's status tells the user to look at (docs/authorizer.md).
pub fn refusal_hint(status: u16) -> &'static str {
    match status {
        401 => "the authorizer found the token invalid: is its issuer (iss) one of the deployment's issuers, its key in their JWKS, and is it unexpired? check the authorizer's log",
        403 => "the token is authentic but not for this API: check its audience (aud, or client_id) against the issuer's audiences, and that it has the principal claim (sub)",
        500 => "the authorizer failed or could not get the issuer's keys: check the authorizer's log",
        _ => "check the stage's execution log",
    }
}
