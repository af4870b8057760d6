//! "Who is in this channel?": `{"action":"presence","channel":"room/42","after":U,"ref":R}` on
//! the `presence` route → `{"type":"presence","channel":"room/42","members":[{"user_id":…,
//! "connections":N}],"more":B,"ref":R}` (docs/presence.md § Who is in a channel).
//!
//! The members are the users with a live subscription to the channel itself (a subscription
//! to a pattern listens, it does not make a member), in `user_id` order, each with how many of
//! their connections have one. One question reads the channel's whole partition of the
//! subscriptions table (a Query, all pages, two attributes per item) and answers the members
//! after `after` that fit [`REPLY_BUDGET_BYTES`]; `more` says the client should ask again
//! with `after` = the last `user_id` it got. The checks, in order: `ref` (`invalid_ref`), the
//! channel (`invalid_channel`: one channel, not a pattern), `after` (`invalid_request`), the
//! grant (`forbidden`: a subscribe grant must cover the channel), the store
//! (`channels_unavailable`).

use std::time::SystemTime;

use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use serde_json::Value;
use sumu_wire::members::{ChannelPresence, Member};
use sumu_wire::{Channel, Pattern, PresenceEventType};
use tracing::{error, info, warn};

use crate::channels::{error_frame, grants_of, read_request, Refusal};
use crate::members::ChannelMembers;
use crate::query::{self, frame, MAX_USER_ID_BYTES};
use crate::stream::epoch_millis;
use crate::Deps;

/// The most a reply's members may take, serialized: well under API Gateway's 128 KB frame,
/// leaving room for the rest of the frame.
pub const REPLY_BUDGET_BYTES: usize = 96 * 1024;

/// Whether a presence question asks about a channel (it has a `channel` field) rather than
/// about users.
pub fn asks_about_a_channel(request: &ApiGatewayWebsocketProxyRequest) -> bool {
    serde_json::from_str::<Value>(request.body.as_deref().unwrap_or_default())
        .is_ok_and(|question| question.get("channel").is_some())
}

/// `after`: absent, or a user id (1 to 2048 bytes).
fn parse_after(value: Option<&Value>) -> Result<Option<String>, Refusal> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(after)) if !after.is_empty() && after.len() <= MAX_USER_ID_BYTES => {
            Ok(Some(after.clone()))
        }
        Some(_) => Err(Refusal::InvalidRequest(format!(
            "`after` must be a user id (a string of 1 to {MAX_USER_ID_BYTES} bytes): the last `user_id` of the previous answer"
        ))),
    }
}

/// The page of `members` (in `user_id` order) after `after` that fits the budget, and whether
/// more follow.
pub fn page(members: impl IntoIterator<Item = Member>, after: Option<&str>) -> (Vec<Member>, bool) {
    let mut page = Vec::new();
    // `[`, then each member with the comma (or `]`) after it: `used` is the list's length.
    let mut used = 1;
    for member in members {
        if after.is_some_and(|after| member.user_id.as_str() <= after) {
            continue;
        }
        let cost = serde_json::to_string(&member).map_or(REPLY_BUDGET_BYTES, |text| text.len() + 1);
        if used + cost > REPLY_BUDGET_BYTES && !page.is_empty() {
            return (page, true);
        }
        used += cost;
        page.push(member);
    }
    (page, false)
}

/// Answers a channel presence question with its frame (status 200: the frame says the
/// outcome).
pub async fn answer_route<C, S, U: ChannelMembers>(
    request: &ApiGatewayWebsocketProxyRequest,
    deps: &Deps<C, S, U>,
    now: SystemTime,
) -> ApiGatewayProxyResponse {
    let connection_id = query::connection_id_of(request);
    let read = read_request(request.body.as_deref());
    let reference = match &read.reference {
        Ok(reference) => reference.clone(),
        Err(invalid) => {
            let refusal = Refusal::InvalidRef(invalid.clone());
            return frame(200, error_frame(&refusal, &read.sent_channel, None));
        }
    };
    let outcome = async {
        let channel =
            Channel::from_json(Some(&read.sent_channel)).map_err(Refusal::InvalidChannel)?;
        let after = parse_after(read.fields.get("after"))?;
        if !grants_of(request).may_subscribe(&Pattern::Exact(channel.clone())) {
            return Err(Refusal::Forbidden(format!(
                "no subscribe grant covers {channel}"
            )));
        }
        let Some(store) = &deps.subscriptions else {
            return Err(Refusal::NOT_CONFIGURED);
        };
        let now_seconds = epoch_millis(now).div_euclid(1000);
        let subscribers = store
            .subscribers(&channel.to_string(), now_seconds)
            .await
            .map_err(|failure| {
                error!(error = %failure, %channel, "reading the channel's subscribers failed");
                Refusal::TRY_AGAIN
            })?;
        let members = subscribers
            .into_iter()
            .map(|(user_id, connections)| Member {
                user_id,
                connections,
            });
        let (members, more) = page(members, after.as_deref());
        Ok(ChannelPresence {
            kind: PresenceEventType::Presence,
            channel: channel.to_string(),
            members,
            more,
            reference: reference.clone(),
        })
    }
    .await;
    let body = match outcome {
        Ok(answer) => {
            info!(connection_id, channel = %answer.channel, members = answer.members.len(), more = answer.more, "channel presence answered");
            // Strings and numbers: serializing cannot fail.
            serde_json::to_string(&answer).unwrap_or_default()
        }
        Err(refusal) => {
            warn!(connection_id, error = refusal.error(), message = %refusal.message(), "channel presence refused");
            error_frame(&refusal, &read.sent_channel, reference.as_deref())
        }
    };
    frame(200, body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn member(user_id: &str) -> Member {
        Member {
            user_id: user_id.into(),
            connections: 1,
        }
    }

    #[test]
    fn pages_follow_after_and_stop_at_the_budget() {
        let all: Vec<Member> = ["a", "b", "c"].into_iter().map(member).collect();
        let (first, more) = page(all.clone(), None);
        assert_eq!((first.len(), more), (3, false));
        let (rest, more) = page(all, Some("a"));
        assert_eq!(
            rest.iter().map(|m| m.user_id.as_str()).collect::<Vec<_>>(),
            ["b", "c"]
        );
        assert!(!more);

        let long: Vec<Member> = (0..2000)
            .map(|n| member(&format!("{n:04}-{}", "x".repeat(60))))
            .collect();
        let (first, more) = page(long.clone(), None);
        assert!(more);
        assert!(serde_json::to_string(&first).unwrap().len() <= REPLY_BUDGET_BYTES);
        let last = first.last().unwrap().user_id.clone();
        let (second, _) = page(long, Some(&last));
        assert!(second[0].user_id > last);
    }

    #[test]
    fn after_is_a_user_id() {
        assert_eq!(parse_after(None).unwrap(), None);
        assert_eq!(
            parse_after(Some(&json!("bob"))).unwrap(),
            Some("bob".into())
        );
        for bad in [json!(""), json!(3), json!(["a"]), json!("x".repeat(2049))] {
            assert!(parse_after(Some(&bad)).is_err(), "{bad}");
        }
    }
}
