//! The `history` WebSocket route (AWS_PROXY), docs/channels.md § History and recovery:
//! `{"action":"history","channel":"room/42","limit":50,"since":{…},"ref":R}` →
//! `{"type":"history","channel":"room/42","offset":N,"epoch":E,"publications":[…],"more":B,
//! "ref":R}`. Without `since`, the latest `limit` kept publications; with it, those after
//! `since` (or `"recovered":false` when they cannot all be had). Publications are always oldest
//! first. Needs a subscribe grant covering the channel. The checks, in order: `ref`
//! (`invalid_ref`), the channel (`invalid_channel`: one channel, not a pattern), `since` and
//! `limit` (`invalid_request`), the grant (`forbidden`), the store (`channels_unavailable`).

use std::time::SystemTime;

use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::Value;
use sumu_wire::{Channel, Pattern};
use tracing::{error, info, warn};

use crate::channels::{error_frame, grants_of, read_request, Refusal};
use crate::history::ChannelHistory;
use crate::query::{self, frame};
use crate::recovery::{self, Replay, Since, MAX_LIMIT};
use crate::stream::epoch_millis;
use crate::subscriptions::SubscriptionStore;
use crate::Deps;

/// The route key this module answers.
pub const ROUTE: &str = "history";

/// `{"type":"history",…}`, serialized as a struct so its keys keep this order in every build.
#[derive(Debug, Serialize)]
struct HistoryReply<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    channel: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    offset: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    epoch: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    recovered: Option<bool>,
    publications: &'a [Box<RawValue>],
    more: bool,
    #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
    reference: Option<&'a str>,
}

/// What a valid question asks.
struct Question {
    channel: Channel,
    since: Option<Since>,
    limit: usize,
}

/// `limit`: absent is [`MAX_LIMIT`]; otherwise a whole number from 1 to it.
fn parse_limit(value: Option<&Value>) -> Result<usize, Refusal> {
    match value {
        None | Some(Value::Null) => Ok(MAX_LIMIT),
        Some(value) => value
            .as_u64()
            .filter(|n| (1..=MAX_LIMIT as u64).contains(n))
            .map(|n| n as usize)
            .ok_or_else(|| {
                Refusal::InvalidRequest(format!(
                    "`limit` must be a whole number from 1 to {MAX_LIMIT}"
                ))
            }),
    }
}

/// The answer's parts: the channel's position (if it has a sequence), whether `since` was
/// recoverable, and what it replays.
#[derive(Default)]
struct Answer {
    offset: Option<u64>,
    epoch: Option<String>,
    recovered: Option<bool>,
    replay: Replay,
}

async fn answer<C, S, U: SubscriptionStore + ChannelHistory>(
    question: &Question,
    deps: &Deps<C, S, U>,
    now: SystemTime,
) -> Result<Answer, Refusal> {
    let Some(store) = &deps.subscriptions else {
        return Err(Refusal::NOT_CONFIGURED);
    };
    let unrecoverable = question.since.as_ref().map(|_| false);
    let Some(policy) = deps.namespaces.history(&question.channel) else {
        // Keeps no history: nothing to replay, nothing to recover.
        return Ok(Answer {
            recovered: unrecoverable,
            ..Answer::default()
        });
    };
    let unavailable = |failure: sumu_history::HistoryError| {
        error!(error = %failure, channel = %question.channel, "reading the channel's history failed");
        Refusal::TRY_AGAIN
    };
    let now_seconds = epoch_millis(now).div_euclid(1000);
    let Some(sequence) = store
        .sequence(&question.channel, now_seconds)
        .await
        .map_err(unavailable)?
    else {
        return Ok(Answer {
            recovered: unrecoverable,
            ..Answer::default()
        });
    };
    let (recovered, replay) = match &question.since {
        None => (
            None,
            recovery::latest(
                store,
                &question.channel,
                &sequence,
                policy,
                question.limit,
                now_seconds,
            )
            .await
            .map_err(unavailable)?,
        ),
        Some(since) => match recovery::after(
            store,
            &question.channel,
            &sequence,
            policy,
            since,
            question.limit,
            now_seconds,
        )
        .await
        .map_err(unavailable)?
        {
            Some(replay) => (Some(true), replay),
            None => (Some(false), Replay::default()),
        },
    };
    Ok(Answer {
        offset: Some(sequence.top),
        epoch: Some(sequence.epoch),
        recovered,
        replay,
    })
}

/// Answers a `history` request with its frame (status 200: the frame says the outcome).
pub async fn answer_route<C, S, U: SubscriptionStore + ChannelHistory>(
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
    let question = (|| {
        let channel =
            Channel::from_json(Some(&read.sent_channel)).map_err(Refusal::InvalidChannel)?;
        let since = read.since.clone().map_err(Refusal::InvalidRequest)?;
        let limit = parse_limit(read.fields.get("limit"))?;
        if !grants_of(request).may_subscribe(&Pattern::Exact(channel.clone())) {
            return Err(Refusal::Forbidden(format!(
                "no subscribe grant covers {channel}"
            )));
        }
        Ok(Question {
            channel,
            since,
            limit,
        })
    })();
    let outcome = match question {
        Ok(question) => answer(&question, deps, now)
            .await
            .map(|answer| (question, answer)),
        Err(refusal) => Err(refusal),
    };
    let body = match outcome {
        Ok((question, answer)) => {
            info!(connection_id, channel = %question.channel, publications = answer.replay.publications.len(), "history answered");
            let channel = question.channel.to_string();
            let reply = HistoryReply {
                kind: "history",
                channel: &channel,
                offset: answer.offset,
                epoch: answer.epoch.as_deref(),
                recovered: answer.recovered,
                publications: &answer.replay.publications,
                more: answer.replay.more,
                reference: reference.as_deref(),
            };
            // Strings, numbers and raw JSON: serializing cannot fail.
            serde_json::to_string(&reply).unwrap_or_default()
        }
        Err(refusal) => {
            warn!(connection_id, error = refusal.error(), message = %refusal.message(), "history refused");
            error_frame(&refusal, &read.sent_channel, reference.as_deref())
        }
    };
    frame(200, body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn limit_is_1_to_100_or_absent() {
        assert_eq!(parse_limit(None).ok(), Some(MAX_LIMIT));
        assert_eq!(parse_limit(Some(&json!(1))).ok(), Some(1));
        assert_eq!(parse_limit(Some(&json!(100))).ok(), Some(100));
        for bad in [
            json!(0),
            json!(101),
            json!(-1),
            json!(1.5),
            json!("5"),
            json!({}),
        ] {
            assert!(parse_limit(Some(&bad)).is_err(), "{bad}");
        }
    }
}
