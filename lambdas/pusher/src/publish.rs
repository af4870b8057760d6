//! Publications to channels (docs/channels.md § Publications): a back end's request with
//! `channels`, or a client's accepted `emit`. For each channel, one Query per partition of the
//! subscriptions table, each connection once, the envelope, and the same delivery, retry,
//! pruning and narrowed re-queue as every other request (crate::fanout).

use std::collections::{HashMap, HashSet};
use std::time::{SystemTime, UNIX_EPOCH};

use futures::{StreamExt, TryStreamExt};
use serde_json::value::RawValue;
use sumu_wire::{Channel, Publication, PublicationType, MAX_NOTIFICATION_DATA_BYTES};

use crate::deadline::{full_jitter, Deadline};
use crate::emit::{self, Emit, EmitAttributes, Refusal};
use crate::fanout::{Delivery, Pusher, PusherError};
use crate::metrics::Metrics;
use crate::outbox::Outbox;
use crate::poster::Poster;
use crate::request::{self, Job, Rejection, Targets};
use crate::store::{ConnectionKey, ConnectionStore, StoreError, DELETE_BATCH_SIZE};
use crate::subscriptions::{SubscriptionItem, SubscriptionKey};

/// One publication: a channel, its id and the envelope every subscriber gets (these bytes).
#[derive(Debug, Clone, PartialEq)]
pub struct Planned {
    pub channel: Channel,
    pub id: String,
    pub envelope: Vec<u8>,
}

/// A request's publications, one per channel, and whom they never reach.
#[derive(Debug, Clone, PartialEq)]
pub struct Publish {
    pub publications: Vec<Planned>,
    pub exclude_users: Vec<String>,
    /// For an emit: the sender's connection.
    pub exclude_connections: Vec<String>,
    pub generation: u32,
}

/// Where a message came from, beyond its body.
#[derive(Debug, Clone, Default)]
pub struct Origin {
    /// The SQS `messageId` or SNS `MessageId`: the base of a publication's id.
    pub message_id: String,
    /// Set when the record is a client's emit (SQS attribute `source` = `apigw.route.emit`).
    pub emit: Option<EmitAttributes>,
    /// The `sumu_shard` attribute: this message is one shard of a large broadcast.
    pub shard: Option<String>,
}

/// What a message body turns into.
#[derive(Debug, Clone, PartialEq)]
pub enum Prepared {
    /// A request to users, connections or everyone (crate::fanout).
    Push(Job),
    /// Publications to channels.
    Publish(Publish),
    /// A refused emit: an error frame to its sender only.
    Refused(Refusal),
}

/// Parses and checks a message: an emit by the rules of crate::emit, anything else as a back
/// end's notification request.
pub fn prepare(body: &str, generation: u32, origin: &Origin) -> Result<Prepared, Rejection> {
    let base_id = if origin.message_id.is_empty() {
        // Lambda always sets it; without one, an id unique to this delivery still lets a
        // client tell publications apart.
        format!("{:032x}", rand::random::<u128>())
    } else {
        origin.message_id.clone()
    };
    if let Some(attributes) = &origin.emit {
        return Ok(
            match emit::parse_emit(body, generation, attributes, &base_id)? {
                Emit::Publish(publish) => Prepared::Publish(publish),
                Emit::Refused(refusal) => Prepared::Refused(refusal),
            },
        );
    }
    let job = request::parse_message(body, generation, origin.shard.as_deref())?;
    let Targets::Channels(channels) = &job.targets else {
        return Ok(Prepared::Push(job));
    };
    let base_id = job.publication_id.clone().unwrap_or(base_id);
    // `payload` holds the bytes of `data` as the back end sent them (crate::request::parse).
    let data = raw_data(&job.payload)?;
    let ids = publication_ids(&base_id, channels);
    let mut publications = Vec::with_capacity(channels.len());
    for (channel, id) in channels.iter().zip(ids) {
        let envelope = envelope(channel, &id, data, None);
        if envelope.len() > MAX_NOTIFICATION_DATA_BYTES {
            return Err(Rejection::EnvelopeTooLarge {
                bytes: envelope.len(),
            });
        }
        publications.push(Planned {
            channel: channel.clone(),
            id,
            envelope,
        });
    }
    Ok(Prepared::Publish(Publish {
        publications,
        exclude_users: job.exclude_users,
        exclude_connections: job.exclude_connections,
        generation,
    }))
}

/// The id of each channel's publication: the base id for a one-channel request,
/// `<base id>#<channel>` per channel otherwise (so each of them is unique and stable).
pub fn publication_ids(base_id: &str, channels: &[Channel]) -> Vec<String> {
    match channels {
        [_] => vec![base_id.to_string()],
        _ => channels
            .iter()
            .map(|channel| format!("{base_id}#{channel}"))
            .collect(),
    }
}

/// `{"type":"publication","channel":…,"id":…,"data":…,"from":…}` (`from` only for an emit),
/// with `data` spliced in as the bytes it was sent. The envelope is serialized as a struct,
/// never through a `Value`, so its keys keep this order whatever serde_json's features (a
/// `Value` map is sorted without `preserve_order` and in insertion order with it). A narrowed
/// re-queue carries these bytes as its `data`, so later generations deliver them unchanged.
pub fn envelope(channel: &Channel, id: &str, data: &RawValue, from: Option<&str>) -> Vec<u8> {
    let publication = Publication {
        kind: PublicationType::Publication,
        channel: channel.to_string(),
        id: id.to_string(),
        data,
        from: from.map(str::to_string),
    };
    // Strings and a raw value that was valid JSON: serializing cannot fail.
    serde_json::to_vec(&publication).unwrap_or_default()
}

/// The bytes of a request's `data` as a `RawValue` (they were one when the request was read).
fn raw_data(payload: &[u8]) -> Result<&RawValue, Rejection> {
    std::str::from_utf8(payload)
        .map_err(|e| e.to_string())
        .and_then(|text| serde_json::from_str::<&RawValue>(text).map_err(|e| e.to_string()))
        .map_err(Rejection::InvalidRequest)
}

/// One connection a publication goes to, and every subscription item it was found through
/// (all of them are pruned if the connection turns out to be gone).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscriber {
    pub key: ConnectionKey,
    pub via: Vec<SubscriptionKey>,
}

/// The subscribers of one publication, after filtering.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Subscribers {
    /// Live, not excluded, each connection once.
    pub live: Vec<Subscriber>,
    /// Subscription items whose `expires_at` passed: to be deleted, never posted to.
    pub expired: Vec<SubscriptionKey>,
}

/// Deduplicates by connection id across every partition of one channel (a connection
/// subscribed through two matching patterns gets the publication once), drops excluded users
/// and connections, and separates expired items.
pub fn select_subscribers(
    found: Vec<SubscriptionItem>,
    exclude_users: &[String],
    exclude_connections: &[String],
    now_epoch_seconds: i64,
) -> Subscribers {
    let excluded_users: HashSet<&str> = exclude_users.iter().map(String::as_str).collect();
    let excluded_connections: HashSet<&str> =
        exclude_connections.iter().map(String::as_str).collect();
    let mut index: HashMap<String, usize> = HashMap::with_capacity(found.len());
    let mut selected = Subscribers::default();
    for item in found {
        if !item.is_live(now_epoch_seconds) {
            selected.expired.push(item.key);
            continue;
        }
        if excluded_users.contains(item.user_id.as_str())
            || excluded_connections.contains(item.key.connection_id.as_str())
        {
            continue;
        }
        match index.get(&item.key.connection_id) {
            Some(&at) => selected.live[at].via.push(item.key),
            None => {
                index.insert(item.key.connection_id.clone(), selected.live.len());
                selected.live.push(Subscriber {
                    key: ConnectionKey {
                        user_id: item.user_id,
                        connection_id: item.key.connection_id.clone(),
                    },
                    via: vec![item.key],
                });
            }
        }
    }
    selected
}

fn epoch_seconds() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl<S: ConnectionStore, P: Poster, O: Outbox> Pusher<S, P, O> {
    /// Fans publications out. Every partition of every channel is read before anything is
    /// posted, so a failed lookup redelivers a message that reached nobody.
    pub async fn publish(
        &self,
        publish: &Publish,
        deadline: Deadline,
    ) -> (Metrics, Result<(), PusherError>) {
        let mut metrics = Metrics::default();
        let mut found = match self.look_up_subscribers(publish).await {
            Ok(found) => found,
            Err(error) => return (metrics, Err(error.into())),
        };
        let mut result = Ok(());
        let now = epoch_seconds();
        for (planned, found) in publish.publications.iter().zip(found.iter_mut()) {
            metrics.publications += 1;
            let subscribers = select_subscribers(
                std::mem::take(found),
                &publish.exclude_users,
                &publish.exclude_connections,
                now,
            );
            tracing::debug!(
                channel = %planned.channel,
                id = %planned.id,
                live = subscribers.live.len(),
                expired = subscribers.expired.len(),
                "subscribers selected"
            );
            let mut via: HashMap<String, Vec<SubscriptionKey>> = HashMap::new();
            let mut targets = Vec::with_capacity(subscribers.live.len());
            for subscriber in subscribers.live {
                via.insert(subscriber.key.connection_id.clone(), subscriber.via);
                targets.push(subscriber.key);
            }

            let mut report = self.deliver(targets, &planned.envelope, deadline).await;
            metrics.delivered += report.delivered;
            metrics.failed += report.failed;
            metrics.retried += report.retried;

            // A 410: the connection item and every subscription item it was found through.
            let gone = std::mem::take(&mut report.gone);
            let mut stale_subscriptions = subscribers.expired;
            metrics.stale += (gone.len() + stale_subscriptions.len()) as u64;
            for key in &gone {
                stale_subscriptions.extend(via.remove(&key.connection_id).unwrap_or_default());
            }
            self.prune(gone, deadline).await;
            self.prune_subscriptions(stale_subscriptions, deadline)
                .await;

            let narrowed = Job::narrowed_publication(
                planned.envelope.clone(),
                publish.generation,
                planned.id.clone(),
            );
            if let Err(error) = self
                .requeue_remainder(&narrowed, &report, &mut metrics)
                .await
            {
                // The other channels still get theirs; SQS redelivers the whole request, and
                // the unchanged ids let clients drop what they already had.
                tracing::error!(%error, channel = %planned.channel, "re-queueing failed");
                if result.is_ok() {
                    result = Err(error);
                }
            }
        }
        (metrics, result)
    }

    /// Every item of every partition of every publication's channel, one list per
    /// publication (expired items and duplicates included). At most `lookup_concurrency`
    /// Queries at once, over all channels.
    async fn look_up_subscribers(
        &self,
        publish: &Publish,
    ) -> Result<Vec<Vec<SubscriptionItem>>, StoreError> {
        let queries = publish
            .publications
            .iter()
            .enumerate()
            .flat_map(|(at, planned)| {
                planned
                    .channel
                    .partitions()
                    .into_iter()
                    .map(move |pattern| (at, pattern.to_string()))
            });
        let pages: Vec<(usize, Vec<SubscriptionItem>)> = futures::stream::iter(queries)
            .map(|(at, pattern)| async move {
                let items = self.store.query_subscriptions(&pattern).await?;
                Ok::<_, StoreError>((at, items))
            })
            .buffer_unordered(self.limits.lookup_concurrency.max(1))
            .try_collect()
            .await?;
        let mut found = vec![Vec::new(); publish.publications.len()];
        for (at, items) in pages {
            found[at].extend(items);
        }
        Ok(found)
    }

    /// Deletes stale subscription items in batches of 25, retrying unprocessed items with
    /// backoff, like stale connections (`Pusher::prune`). A failure is only logged: TTL and
    /// the next publication get them.
    async fn prune_subscriptions(&self, stale: Vec<SubscriptionKey>, deadline: Deadline) {
        if stale.is_empty() {
            return;
        }
        let limits = &self.limits;
        let left: usize = futures::stream::iter(stale.chunks(DELETE_BATCH_SIZE))
            .map(|batch| async move {
                let mut pending = batch.to_vec();
                let mut attempt = 0;
                loop {
                    match self.store.delete_subscriptions(&pending).await {
                        Ok(unprocessed) => pending = unprocessed,
                        Err(error) => tracing::warn!(
                            %error,
                            keys = pending.len(),
                            "deleting stale subscriptions failed"
                        ),
                    }
                    attempt += 1;
                    if pending.is_empty() {
                        return 0;
                    }
                    let wait = full_jitter(attempt, limits.backoff_base, limits.backoff_cap);
                    if attempt >= limits.max_post_attempts
                        || !deadline.allows(wait, limits.safety_margin / 2)
                    {
                        return pending.len();
                    }
                    tokio::time::sleep(wait).await;
                }
            })
            .buffer_unordered(limits.lookup_concurrency.max(1))
            .fold(0, |left, batch_left| {
                futures::future::ready(left + batch_left)
            })
            .await;
        if left > 0 {
            tracing::warn!(
                left,
                pruned = stale.len() - left,
                "some stale subscriptions were not deleted"
            );
        } else {
            tracing::info!(pruned = stale.len(), "stale subscriptions deleted");
        }
    }

    /// Posts a refused emit's error frame to its sender (retried like any post) and nothing
    /// to anyone else. It is not dead-lettered: the client was told. If the sender is gone
    /// its connection item is pruned; a frame still failing after the retries is only counted,
    /// and one the deadline left no time for fails the record (redelivered).
    pub async fn refuse_emit(
        &self,
        refusal: &Refusal,
        deadline: Deadline,
    ) -> (Metrics, Result<(), PusherError>) {
        tracing::info!(
            error = refusal.error,
            user_id = %refusal.sender.user_id,
            connection_id = %refusal.sender.connection_id,
            message = %refusal.message,
            "emit refused"
        );
        let mut metrics = Metrics {
            refused_emits: 1,
            ..Metrics::default()
        };
        let (delivery, retries) = self
            .deliver_one(&refusal.sender.connection_id, &refusal.frame(), deadline)
            .await;
        metrics.retried += u64::from(retries);
        match delivery {
            Delivery::Delivered => {}
            Delivery::Gone => {
                metrics.stale += 1;
                let key = ConnectionKey {
                    user_id: refusal.sender.user_id.clone(),
                    connection_id: refusal.sender.connection_id.clone(),
                };
                self.prune(vec![key], deadline).await;
            }
            // Not even tried before the deadline: SQS redelivers the emit, nothing duplicated.
            Delivery::Deferred => return (metrics, Err(PusherError::OutOfTime)),
            Delivery::Failed | Delivery::Exhausted => {
                tracing::warn!(
                    ?delivery,
                    "the refused emit's error frame was not delivered"
                );
                metrics.failed += 1;
            }
        }
        (metrics, Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subscription(
        pattern: &str,
        connection: &str,
        user: &str,
        expires_at: i64,
    ) -> SubscriptionItem {
        SubscriptionItem {
            key: SubscriptionKey {
                channel: pattern.into(),
                connection_id: connection.into(),
            },
            user_id: user.into(),
            expires_at: Some(expires_at),
        }
    }

    #[test]
    fn subscribers_are_deduplicated_across_partitions_and_filtered() {
        let found = vec![
            subscription("room/42", "a", "u1", 200),
            subscription("room/*", "a", "u1", 200),
            subscription("*", "b", "u2", 200),
            subscription("room/42", "c", "u3", 50),
            subscription("room/*", "d", "u4", 200),
            subscription("room/42", "e", "u5", 200),
        ];
        let mut no_expiry = subscription("room/42", "f", "u6", 0);
        no_expiry.expires_at = None;
        let mut found = found;
        found.push(no_expiry);
        let selected = select_subscribers(found, &["u4".into()], &["e".into()], 100);
        let live: Vec<(&str, usize)> = selected
            .live
            .iter()
            .map(|s| (s.key.connection_id.as_str(), s.via.len()))
            .collect();
        assert_eq!(live, [("a", 2), ("b", 1)]);
        assert_eq!(selected.live[0].key.user_id, "u1");
        let expired: Vec<&str> = selected
            .expired
            .iter()
            .map(|k| k.connection_id.as_str())
            .collect();
        assert_eq!(
            expired,
            ["c", "f"],
            "without expires_at a subscription is not live"
        );
    }

    #[test]
    fn one_channel_keeps_the_base_id_and_several_get_one_each() {
        let channels: Vec<Channel> = ["room/1", "room/2"]
            .iter()
            .map(|c| Channel::parse(c).unwrap())
            .collect();
        assert_eq!(publication_ids("m1", &channels[..1]), ["m1"]);
        assert_eq!(publication_ids("m1", &channels), ["m1#room/1", "m1#room/2"]);
    }

    #[test]
    fn a_back_end_publication_is_planned_per_channel_without_from() {
        let origin = Origin {
            message_id: "m1".into(),
            ..Origin::default()
        };
        let Prepared::Publish(publish) = prepare(
            r#"{"channels":["room/1","room/2","room/1"],"exclude_users":["u3"],"exclude_connections":["c9"],"data":{"k":1}}"#,
            0,
            &origin,
        )
        .unwrap() else {
            panic!("not a publication")
        };
        assert_eq!(publish.exclude_users, ["u3"]);
        assert_eq!(publish.exclude_connections, ["c9"]);
        let envelopes: Vec<&str> = publish
            .publications
            .iter()
            .map(|p| std::str::from_utf8(&p.envelope).unwrap())
            .collect();
        assert_eq!(
            envelopes,
            [
                r#"{"type":"publication","channel":"room/1","id":"m1#room/1","data":{"k":1}}"#,
                r#"{"type":"publication","channel":"room/2","id":"m1#room/2","data":{"k":1}}"#,
            ]
        );
        // A back end's own id wins over the message id.
        let Prepared::Publish(publish) = prepare(
            r#"{"channels":["room/1"],"publication_id":"order-7","data":1}"#,
            0,
            &origin,
        )
        .unwrap() else {
            panic!("not a publication")
        };
        assert_eq!(publish.publications[0].id, "order-7");
    }

    #[test]
    fn a_publication_whose_envelope_does_not_fit_is_rejected_as_too_large() {
        let body = serde_json::json!({"channels":["room/1"],
            "data":"x".repeat(MAX_NOTIFICATION_DATA_BYTES - 2)})
        .to_string();
        let rejection = prepare(&body, 0, &Origin::default()).unwrap_err();
        assert_eq!(rejection.reason(), "data_too_large");
    }
}
