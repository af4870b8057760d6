//! The checks, by subject. Each returns `Ok(())`, or a [`Verdict`] whose message says what was
//! expected, what came and what to look at.

mod channels;
mod connect;
mod frames;
mod limits;
mod messages;
mod notify;
mod presence;

use serde_json::Value;

use crate::{fail, Outcome, Suite, Verdict};

impl Suite {
    /// Runs one check (by its name in [`crate::CHECKS`]), bounded as a whole. It lives here,
    /// beside the checks, so the crate root (the suite) does not import the checks that use it.
    pub async fn run(&self, name: &str) -> Outcome {
        // Generous: the cap check makes one round trip per subscription, each bounded.
        let budget = self.settings.deadline * 10;
        match tokio::time::timeout(budget, run(self, name)).await {
            Ok(outcome) => outcome,
            Err(_) => Err(fail(format!(
                "the check did not finish within {budget:?}: the deployment answers very slowly; see the lines above"
            ))),
        }
    }
}

/// Runs the check named `name` (one of [`crate::CHECKS`]).
pub async fn run(suite: &Suite, name: &str) -> Outcome {
    match name {
        "upgrade-valid-token" => connect::upgrade_valid_token(suite).await,
        "upgrade-no-token" => connect::upgrade_no_token(suite).await,
        "upgrade-bad-token" => connect::upgrade_bad_token(suite).await,
        "upgrade-foreign-token" => connect::upgrade_foreign_token(suite).await,
        "ping" => connect::ping(suite).await,
        "unknown-action" => connect::unknown_action(suite).await,
        "send" => messages::send(suite).await,
        "publish" => messages::publish(suite).await,
        "invalid-message" => messages::invalid_message(suite).await,
        "presence-events" => presence::events(suite).await,
        "notify-user" => notify::user(suite).await,
        "notify-user-topic" => notify::user_topic(suite).await,
        "notify-connection" => notify::connection(suite).await,
        "notify-broadcast" => notify::broadcast(suite).await,
        "channel-publication" => channels::publication(suite).await,
        "unsubscribe" => channels::unsubscribe(suite).await,
        "emit" => channels::emit(suite).await,
        "subscribe-forbidden" => channels::subscribe_forbidden(suite).await,
        "invalid-channel" => channels::invalid_channel(suite).await,
        "emit-forbidden" => channels::emit_forbidden(suite).await,
        "emit-invalid-message" => channels::emit_invalid_message(suite).await,
        "too-many-subscriptions" => channels::too_many_subscriptions(suite).await,
        "presence-query" => presence::query(suite).await,
        "channel-presence" => presence::channel(suite).await,
        "notify-disconnect" => notify::disconnect(suite).await,
        "frame-too-large" => limits::frame_too_large(suite).await,
        "message-too-large" => limits::message_too_large(suite).await,
        "binary-frame" => limits::binary_frame(suite).await,
        "notification-too-large" => notify::too_large(suite).await,
        "cleanup-after-close" => notify::cleanup_after_close(suite).await,
        "typed-frames" => frames::typed_frames(suite).await,
        "refs" => frames::refs(suite).await,
        "emit-ack" => frames::emit_ack(suite).await,
        other => Err(fail(format!("there is no check named {other}"))),
    }
}

/// Fails unless `condition` holds.
fn ensure(condition: bool, message: impl FnOnce() -> String) -> Result<(), Verdict> {
    if condition {
        Ok(())
    } else {
        Err(fail(message()))
    }
}

/// An error frame `{"type":"error","error":code,…}`.
fn is_error(frame: &Value, code: &str) -> bool {
    frame["type"] == "error" && frame["error"] == code
}

/// Any error frame: what a check waiting for a reply also accepts, so a wrong refusal is
/// reported at once instead of after the deadline.
fn is_any_error(frame: &Value) -> bool {
    frame["type"] == "error"
}
