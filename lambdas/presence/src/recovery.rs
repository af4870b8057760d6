//! What a client missed (docs/channels.md § History and recovery): reading `since` from a
//! request, and the kept publications a reply replays, within one frame. Used by `subscribe`
//! with `since` (crate::channels) and by the `history` route (crate::history_route).

use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::Value;
use sumu_history::{HistoryError, Kept, Sequence};
use sumu_wire::frames::MAX_KEPT_PUBLICATION_BYTES;
use sumu_wire::{Channel, HistoryPolicy};
use tracing::warn;

use crate::history::ChannelHistory;

/// The most publications one reply carries, and one Query reads.
pub const MAX_LIMIT: usize = 100;

/// The most publications that may be given their offset and not be stored yet when a
/// client asks (each pusher invocation stores its publication a moment after giving it its
/// offset; two pollers at once).
pub const MAX_IN_FLIGHT: u64 = 2;

/// The bytes a reply's publications may take (with their commas): what is left of API
/// Gateway's 128 KB once the reply's own keys have their 1 KB.
pub const PUBLICATIONS_BUDGET: usize = MAX_KEPT_PUBLICATION_BYTES;

/// The longest epoch a client may send back (sumu's are 16 characters).
pub const MAX_EPOCH_CHARS: usize = 64;

/// Where a client says it stopped: `{"offset":41,"epoch":"E"}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Since {
    pub offset: u64,
    pub epoch: String,
}

/// Reads `since`: absent (or `null`) is `None`; otherwise an object with exactly `offset` (a
/// whole number from 0 to 2^64 − 1) and `epoch` (a string of 1–64 characters). The error is a
/// message safe to send back.
pub fn parse_since(value: Option<&Value>) -> Result<Option<Since>, String> {
    let object = match value {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Object(object)) => object,
        Some(_) => {
            return Err(r#"`since` must be an object like {"offset":41,"epoch":"…"}"#.into())
        }
    };
    if object.keys().any(|key| key != "offset" && key != "epoch") {
        return Err("`since` has only `offset` and `epoch`".into());
    }
    let offset = object
        .get("offset")
        .and_then(Value::as_u64)
        .ok_or("`since.offset` must be a whole number from 0 to 18446744073709551615")?;
    let epoch = object
        .get("epoch")
        .and_then(Value::as_str)
        .filter(|epoch| !epoch.is_empty() && epoch.chars().count() <= MAX_EPOCH_CHARS)
        .ok_or("`since.epoch` must be a string of 1 to 64 characters")?;
    Ok(Some(Since {
        offset,
        epoch: epoch.to_owned(),
    }))
}

/// Publications a reply carries, oldest first, and whether more remain.
#[derive(Debug, Default, Serialize)]
pub struct Replay {
    pub publications: Vec<Box<RawValue>>,
    pub more: bool,
}

/// Kept items as frames, in the order given, as many as fit in [`PUBLICATIONS_BUDGET`];
/// `true` when some did not fit.
fn within_budget(kept: Vec<Kept>, channel: &Channel) -> (Vec<(u64, Box<RawValue>)>, bool) {
    let mut used = 0;
    let mut frames = Vec::with_capacity(kept.len());
    for item in kept {
        let cost = item.publication.len() + 1;
        if used + cost > PUBLICATIONS_BUDGET {
            return (frames, true);
        }
        match RawValue::from_string(item.publication) {
            Ok(frame) => {
                used += cost;
                frames.push((item.offset, frame));
            }
            // Written by the pusher from a struct: cannot happen unless someone wrote the table.
            Err(error) => {
                warn!(%channel, offset = item.offset, %error, "a kept publication is not JSON: skipped")
            }
        }
    }
    (frames, false)
}

/// The oldest offset `policy` still keeps of a sequence at `top`.
fn oldest_kept(top: u64, policy: HistoryPolicy) -> u64 {
    top.saturating_sub(u64::from(policy.size))
        .saturating_add(1)
        .max(1)
}

/// Every kept publication after `since`, oldest first, at most `limit` and one frame's worth;
/// `None` when they cannot all be had: another epoch, an offset this sequence never reached,
/// one older than what history keeps (by size), or a missed publication past its time.
///
/// How a hole is told from a loss: the read starts at `since.offset` itself, the last
/// publication the client has (the *anchor*). Publications get later expiries as their offsets
/// grow, so while the anchor is kept and not expired, nothing after it has expired or been
/// removed by TTL: a missing offset after it was given out and never stored (its pusher stopped
/// between the two writes; the publication went out again under a later offset) or is on its
/// way (given its offset a moment ago, stored a moment later, reaching the subscription live),
/// and is skipped. Without the anchor (not kept, or past its time) a hole cannot be told from a
/// loss: `None`, unless `since.offset` is 0 (the client had nothing; see [`in_flight`]).
///
/// `more` is set only when this reply stopped short (the limit or the frame budget).
pub async fn after<H: ChannelHistory>(
    history: &H,
    channel: &Channel,
    sequence: &Sequence,
    policy: HistoryPolicy,
    since: &Since,
    limit: usize,
    now_epoch_seconds: i64,
) -> Result<Option<Replay>, HistoryError> {
    if since.epoch != sequence.epoch || since.offset > sequence.top {
        return Ok(None);
    }
    if since.offset == sequence.top {
        return Ok(Some(Replay::default()));
    }
    let first = since.offset + 1;
    if first < oldest_kept(sequence.top, policy) {
        return Ok(None);
    }
    // The anchor (when there is one) and up to `limit` after it.
    let anchored = since.offset > 0;
    let wanted = usize::try_from(sequence.top - since.offset)
        .unwrap_or(usize::MAX)
        .min(limit);
    let mut kept = history
        .read(
            channel,
            &sequence.epoch,
            (if anchored { since.offset } else { first }, sequence.top),
            wanted + usize::from(anchored),
            true,
            now_epoch_seconds,
        )
        .await?;
    if kept.iter().any(|item| item.expired) {
        // The anchor or a missed publication is past its time.
        return Ok(None);
    }
    if anchored {
        if kept.first().map(|item| item.offset) != Some(since.offset) {
            // The anchor is gone: a hole after it might be a loss.
            return Ok(None);
        }
        kept.remove(0);
    } else if kept.first().map(|item| item.offset) != Some(first)
        && !(kept.is_empty() && in_flight(sequence, since, policy, now_epoch_seconds))
    {
        return Ok(None);
    }
    let read = kept.len();
    let (frames, trimmed) = within_budget(kept, channel);
    let last = frames.last().map_or(since.offset, |(offset, _)| *offset);
    Ok(Some(Replay {
        more: last < sequence.top && (trimmed || read >= wanted),
        publications: frames.into_iter().map(|(_, frame)| frame).collect(),
    }))
}

/// Without an anchor (`since.offset` 0), whether the missed publications, none of them stored
/// yet, are on their way: a few, and the latest one younger than the history's time.
fn in_flight(sequence: &Sequence, since: &Since, policy: HistoryPolicy, now: i64) -> bool {
    sequence.top - since.offset <= MAX_IN_FLIGHT
        && sequence.published_at > now - i64::from(policy.ttl_seconds)
}

/// The latest `limit` kept publications (one frame's worth), oldest first; `more` when older
/// kept ones were left out.
pub async fn latest<H: ChannelHistory>(
    history: &H,
    channel: &Channel,
    sequence: &Sequence,
    policy: HistoryPolicy,
    limit: usize,
    now_epoch_seconds: i64,
) -> Result<Replay, HistoryError> {
    let floor = oldest_kept(sequence.top, policy);
    if sequence.top == 0 {
        return Ok(Replay::default());
    }
    let kept = history
        .read(
            channel,
            &sequence.epoch,
            (floor, sequence.top),
            limit,
            false,
            now_epoch_seconds,
        )
        .await?;
    let read = kept.len();
    // Past their time: never served.
    let live: Vec<Kept> = kept.into_iter().filter(|item| !item.expired).collect();
    let (mut frames, trimmed) = within_budget(live, channel);
    frames.reverse();
    let oldest = frames.first().map_or(floor, |(offset, _)| *offset);
    Ok(Replay {
        more: oldest > floor && (trimmed || read == limit),
        publications: frames.into_iter().map(|(_, frame)| frame).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn since_is_an_offset_and_an_epoch_or_nothing() {
        assert_eq!(parse_since(None), Ok(None));
        assert_eq!(parse_since(Some(&Value::Null)), Ok(None));
        assert_eq!(
            parse_since(Some(&json!({"offset": 41, "epoch": "e"}))),
            Ok(Some(Since {
                offset: 41,
                epoch: "e".into()
            }))
        );
        assert_eq!(
            parse_since(Some(&json!({"offset": u64::MAX, "epoch": "e"})))
                .unwrap()
                .unwrap()
                .offset,
            u64::MAX
        );
        let two_to_the_64: Value = serde_json::from_str("18446744073709551616").unwrap();
        for bad in [
            json!({"offset": -1, "epoch": "e"}),
            json!({"offset": two_to_the_64, "epoch": "e"}),
            json!({"offset": 1.5, "epoch": "e"}),
            json!({"offset": "41", "epoch": "e"}),
            json!({"offset": {"n": 1}, "epoch": "e"}),
            json!({"epoch": "e"}),
            json!({"offset": 1}),
            json!({"offset": 1, "epoch": ""}),
            json!({"offset": 1, "epoch": 7}),
            json!({"offset": 1, "epoch": "e".repeat(65)}),
            json!({"offset": 1, "epoch": "e", "extra": true}),
            json!("41"),
            json!(41),
            json!([41, "e"]),
        ] {
            assert!(parse_since(Some(&bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_budget_keeps_whole_publications_in_order() {
        let channel = Channel::parse("room/1").unwrap();
        let big = |offset: u64| Kept {
            offset,
            publication: format!(r#""{}""#, "x".repeat(PUBLICATIONS_BUDGET / 3)),
            expired: false,
        };
        let (frames, trimmed) = within_budget(vec![big(1), big(2), big(3), big(4)], &channel);
        assert_eq!(frames.iter().map(|(o, _)| *o).collect::<Vec<_>>(), [1, 2]);
        assert!(trimmed);
        let (frames, trimmed) = within_budget(vec![big(1)], &channel);
        assert_eq!(frames.len(), 1);
        assert!(!trimmed);
    }

    #[test]
    fn history_keeps_the_latest_size_offsets() {
        let policy = HistoryPolicy {
            size: 10,
            ttl_seconds: 60,
        };
        assert_eq!(oldest_kept(0, policy), 1);
        assert_eq!(oldest_kept(5, policy), 1);
        assert_eq!(oldest_kept(10, policy), 1);
        assert_eq!(oldest_kept(11, policy), 2);
        assert_eq!(oldest_kept(u64::MAX, policy), u64::MAX - 9);
    }
}
