//! The one path from a valid request to its deliveries: plan the targets (crate::targets),
//! hand a large broadcast's shards to the queue, post to each target with bounded concurrency
//! and retries, prune the stale items, re-queue (narrowed) whatever still failed. Every kind
//! of request goes through [`Pusher::fan_out`]; a refused emit only gets its error frame.

use std::collections::HashMap;
use std::future::Future;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::{StreamExt, TryStreamExt};
use sumu_wire::Namespaces;

use crate::config::Limits;
use crate::deadline::{full_jitter, Deadline};
use crate::emit::{Acknowledgement, Refusal, Sender};
use crate::history::HistoryStore;
use crate::metrics::{Metrics, MetricsSink};
use crate::outbox::{Outbox, OutboxError};
use crate::poster::{PostOutcome, Poster};
use crate::request::{body, Planned, Request, Shard, Targets};
use crate::store::{ConnectionKey, ConnectionStore, StoreError, DELETE_BATCH_SIZE};
use crate::subscriptions::{SubscriptionKey, SubscriptionStore};
use crate::targets::{self, Part};

/// The pusher's dependencies: the seams and the tunables. Shared by reference across
/// invocations; holds no per-request state.
#[derive(Debug, Clone)]
pub struct Pusher<S, P, O, M> {
    pub store: S,
    pub poster: P,
    pub outbox: O,
    /// Where each invocation's counters go (crate::handler records them once per invocation).
    pub metrics: M,
    pub limits: Limits,
    /// Which channels keep history (crate::history).
    pub namespaces: Namespaces,
}

impl<S, P, O, M> Pusher<S, P, O, M> {
    /// The same pusher, its invocations' counters going to `metrics` instead: e.g. an
    /// [`SdkPusher`](crate::SdkPusher) whose counters are kept rather than printed.
    pub fn with_metrics<N: MetricsSink>(self, metrics: N) -> Pusher<S, P, O, N> {
        Pusher {
            store: self.store,
            poster: self.poster,
            outbox: self.outbox,
            metrics,
            limits: self.limits,
            namespaces: self.namespaces,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PusherError {
    /// Nothing was posted yet, so the whole request can safely be redelivered.
    #[error("looking up the targets failed: {0}")]
    Lookup(#[from] StoreError),
    #[error("re-queueing the failed connections failed: {0}")]
    Requeue(OutboxError),
    #[error("sending to the dead-letter queue failed: {0}")]
    DeadLetter(OutboxError),
    /// Nothing was posted yet; shards already sent are sent again on redelivery.
    #[error("handing a shard of the broadcast to the queue failed: {0}")]
    Shard(OutboxError),
    #[error("not enough time left in the invocation to start this request")]
    OutOfTime,
    /// Nothing was posted yet (an offset may have been given out: a gap, never a double).
    #[error("keeping the publication in its channel's history failed: {0}")]
    History(StoreError),
    #[error("not an SQS or SNS event: {0}")]
    UnknownEvent(String),
    #[error("{failed} of {total} SNS records failed")]
    RecordsFailed { failed: usize, total: usize },
}

impl PusherError {
    /// A stable `errorType` for Lambda's error report.
    pub fn error_type(&self) -> &'static str {
        match self {
            PusherError::Lookup(_)
            | PusherError::Requeue(_)
            | PusherError::DeadLetter(_)
            | PusherError::Shard(_)
            | PusherError::History(_)
            | PusherError::OutOfTime => "Retryable",
            PusherError::RecordsFailed { .. } => "Retryable",
            PusherError::UnknownEvent(_) => "Validation",
        }
    }
}

impl From<PusherError> for lambda_runtime::Diagnostic {
    fn from(error: PusherError) -> Self {
        lambda_runtime::Diagnostic {
            error_type: error.error_type().into(),
            error_message: error.to_string(),
        }
    }
}

/// How posting to one connection ended in this invocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Delivery {
    Delivered,
    Gone,
    /// A non-retryable answer: given up for good.
    Failed,
    /// Still failing after the retries this invocation allowed.
    Exhausted,
    /// Never attempted: the invocation ran out of time first.
    Deferred,
}

#[derive(Debug, Default)]
struct DeliveryReport {
    delivered: u64,
    failed: u64,
    retried: u64,
    attempted: u64,
    gone: Vec<ConnectionKey>,
    exhausted: Vec<String>,
    deferred: Vec<String>,
}

/// SQS's message size limit, minus room for attributes and the JSON around the ids.
const MAX_REQUEUE_BODY_BYTES: usize = 256 * 1024 - 2 * 1024;

fn epoch_seconds() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl<S, P, O, M> Pusher<S, P, O, M>
where
    S: ConnectionStore + SubscriptionStore + HistoryStore,
    P: Poster,
    O: Outbox,
{
    /// Fans one valid request out, whatever its kind. The metrics count what happened even
    /// when it fails.
    pub(crate) async fn fan_out(
        &self,
        request: &Request,
        deadline: Deadline,
    ) -> (Metrics, Result<(), PusherError>) {
        let mut metrics = Metrics::default();
        let can_shard = self.can_shard(request);
        let plan = match targets::plan(
            &self.store,
            &self.limits,
            request,
            can_shard,
            epoch_seconds(),
        )
        .await
        {
            Ok(plan) => plan,
            Err(error) => return (metrics, Err(error.into())),
        };
        // Before anything is posted: a failure here redelivers a message that reached nobody.
        if let Err(error) = self.enqueue_shards(request, &plan.shards).await {
            return (metrics, Err(PusherError::Shard(error)));
        }
        metrics.shards = plan.shards.len() as u64;
        let mut result = Ok(());
        for part in plan.parts {
            if let Err(error) = self
                .deliver_part(request, part, deadline, &mut metrics)
                .await
            {
                // The other publications still get theirs; SQS redelivers the whole request,
                // and the unchanged ids let clients drop what they already had.
                tracing::error!(%error, "re-queueing failed");
                if result.is_ok() {
                    result = Err(error);
                }
            }
        }
        (metrics, result)
    }

    /// One payload: post it to its targets, prune the stale items, re-queue the remainder.
    async fn deliver_part(
        &self,
        request: &Request,
        part: Part<'_>,
        deadline: Deadline,
        metrics: &mut Metrics,
    ) -> Result<(), PusherError> {
        let selection = part.selection;
        if let Some(planned) = part.publication {
            metrics.publications += 1;
            tracing::debug!(channel = %planned.channel, id = %planned.id, "publication");
        }
        tracing::debug!(
            live = selection.live.len(),
            expired = selection.expired.len() + selection.expired_subscriptions.len(),
            "targets selected"
        );
        let mut via: HashMap<String, Vec<SubscriptionKey>> = HashMap::new();
        let mut keys = Vec::with_capacity(selection.live.len());
        for target in selection.live {
            if !target.via.is_empty() {
                via.insert(target.key.connection_id.clone(), target.via);
            }
            keys.push(target.key);
        }

        let mut report = self.deliver(keys, part.payload, deadline).await;
        metrics.delivered += report.delivered;
        metrics.failed += report.failed;
        metrics.retried += report.retried;

        // A 410: the connection item and every subscription item it was found through.
        let gone = std::mem::take(&mut report.gone);
        let mut stale_subscriptions = selection.expired_subscriptions;
        let mut stale = selection.expired;
        metrics.stale += (stale.len() + gone.len() + stale_subscriptions.len()) as u64;
        for key in &gone {
            stale_subscriptions.extend(via.remove(&key.connection_id).unwrap_or_default());
        }
        stale.extend(gone);
        self.prune(stale, stale_subscriptions, deadline).await;

        self.requeue_remainder(request, part.publication, &report, metrics)
            .await
    }

    /// Whether this broadcast may hand shards to other invocations: a threshold is set, the
    /// queue is there, and a shard's message fits in SQS.
    fn can_shard(&self, request: &Request) -> bool {
        self.limits.shard_threshold > 0
            && self.outbox.can_enqueue_shards()
            && request.shard_body().len() <= MAX_REQUEUE_BODY_BYTES
    }

    /// Sends the shards to the queue, `lookup_concurrency` at a time.
    async fn enqueue_shards(&self, request: &Request, shards: &[Shard]) -> Result<(), OutboxError> {
        if shards.is_empty() {
            return Ok(());
        }
        let body = request.shard_body();
        futures::stream::iter(shards)
            .map(|shard| {
                self.outbox
                    .enqueue_shard(body.clone(), shard.attribute(), request.generation)
            })
            .buffer_unordered(self.limits.lookup_concurrency.max(1))
            .try_collect::<Vec<()>>()
            .await?;
        tracing::info!(
            shards = shards.len(),
            "broadcast shards handed to the queue"
        );
        Ok(())
    }

    /// Posts a refused emit's error frame to its sender and nothing to anyone else. It is
    /// not dead-lettered: the client was told.
    pub(crate) async fn refuse_emit(
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
        let (mut metrics, result) = self
            .reply_to_sender(&refusal.sender, &refusal.frame(), deadline)
            .await;
        metrics.refused_emits += 1;
        (metrics, result)
    }

    /// A valid request, whatever its kind: its publications kept in their channel's history
    /// first (an offset each, stored before anything is posted), then an emit's `ack` (with
    /// that offset), then the fan-out. A subscriber lookup that fails after a publication got
    /// its offset does not fail the record (a redelivery would give it another offset): the
    /// publication is re-queued as it is instead ([`Pusher::defer`]).
    pub(crate) async fn publish(
        &self,
        request: &Request,
        ack: Option<&Acknowledgement>,
        deadline: Deadline,
    ) -> (Metrics, Result<(), PusherError>) {
        let mut metrics = Metrics::default();
        let kept = match self.keep_history(request).await {
            Ok(kept) => kept,
            // Nothing posted yet: SQS redelivers the request.
            Err(error) => return (metrics, Err(PusherError::History(error))),
        };
        let request = kept.as_ref().unwrap_or(request);
        if let Some(ack) = ack {
            let (acked, result) = self
                .reply_to_sender(&ack.sender, &ack.frame(request), deadline)
                .await;
            metrics += acked;
            if result.is_err() {
                return (metrics, result);
            }
        }
        let (fanned, result) = self.fan_out(request, deadline).await;
        metrics += fanned;
        match result {
            Err(PusherError::Lookup(error)) if kept.is_some() => {
                tracing::warn!(%error, "looking up the subscribers failed after the publication was kept: re-queued with its offset");
                match self.defer(request).await {
                    Ok(()) => (metrics, Ok(())),
                    Err(error) => (metrics, Err(PusherError::Requeue(error))),
                }
            }
            other => (metrics, other),
        }
    }

    /// Gives each publication of `request` whose channel keeps history its offset and stores
    /// it: two writes per publication. `None` when the request has no such publication.
    async fn keep_history(&self, request: &Request) -> Result<Option<Request>, StoreError> {
        let Targets::Channels(planned) = &request.targets else {
            return Ok(None);
        };
        let Some(data) = request.fields.data.as_deref() else {
            return Ok(None);
        };
        if planned
            .iter()
            .all(|publication| publication.history.is_none())
        {
            return Ok(None);
        }
        let now = epoch_seconds();
        let mut kept = Vec::with_capacity(planned.len());
        for publication in planned {
            let Some(policy) = publication.history else {
                kept.push(publication.clone());
                continue;
            };
            let offset = self.store.next_offset(&publication.channel, now).await?;
            let stored = publication.kept(data, offset.offset, &offset.epoch);
            let expires_at = now + i64::from(policy.ttl_seconds);
            self.store
                .keep(
                    &publication.channel,
                    &offset,
                    stored.envelope.get(),
                    expires_at,
                )
                .await?;
            tracing::debug!(channel = %publication.channel, offset = offset.offset, epoch = %offset.epoch, "publication kept");
            kept.push(stored);
        }
        let mut request = request.clone();
        request.targets = Targets::Channels(kept);
        Ok(Some(request))
    }

    /// Re-queues each publication of a request as its envelope (`sumu_frame`), exclusions
    /// kept, so the next attempt delivers it with the offset it already has.
    async fn defer(&self, request: &Request) -> Result<(), OutboxError> {
        let Targets::Channels(planned) = &request.targets else {
            return Ok(());
        };
        let generation = request.generation + 1;
        for publication in planned {
            let mut fields = request.fields.clone();
            fields.users = None;
            fields.connections = None;
            fields.channels = Some(vec![publication.channel.to_string()]);
            fields.publication_id = Some(publication.id.clone());
            fields.data = Some(publication.envelope.clone());
            self.outbox
                .requeue(
                    body(&fields),
                    generation,
                    requeue_delay(self.limits.requeue_delay, generation),
                )
                .await?;
        }
        Ok(())
    }

    /// Posts one frame to an emit's sender (retried like any post). If the sender is gone
    /// its connection item is pruned; a frame still failing after the retries is only
    /// counted, and one the deadline left no time for fails the record (redelivered: nothing
    /// was posted to anyone yet).
    async fn reply_to_sender(
        &self,
        sender: &Sender,
        frame: &[u8],
        deadline: Deadline,
    ) -> (Metrics, Result<(), PusherError>) {
        let mut metrics = Metrics::default();
        let (delivery, retries) = self
            .deliver_one(&sender.connection_id, frame, deadline)
            .await;
        metrics.retried += u64::from(retries);
        match delivery {
            Delivery::Delivered => {}
            Delivery::Gone => {
                metrics.stale += 1;
                let key = ConnectionKey {
                    user_id: sender.user_id.clone(),
                    connection_id: sender.connection_id.clone(),
                };
                self.prune(vec![key], Vec::new(), deadline).await;
            }
            Delivery::Deferred => return (metrics, Err(PusherError::OutOfTime)),
            Delivery::Failed | Delivery::Exhausted => {
                tracing::warn!(
                    ?delivery,
                    "the frame to the emit's sender was not delivered"
                );
                metrics.failed += 1;
            }
        }
        (metrics, Ok(()))
    }

    async fn deliver(
        &self,
        targets: Vec<ConnectionKey>,
        payload: &[u8],
        deadline: Deadline,
    ) -> DeliveryReport {
        futures::stream::iter(targets)
            .map(|key| async move {
                let (delivery, retries) = self
                    .deliver_one(&key.connection_id, payload, deadline)
                    .await;
                (key, delivery, retries)
            })
            .buffer_unordered(self.limits.post_concurrency.max(1))
            .fold(
                DeliveryReport::default(),
                |mut report, (key, delivery, retries)| {
                    report.retried += u64::from(retries);
                    if delivery != Delivery::Deferred {
                        report.attempted += 1;
                    }
                    match delivery {
                        Delivery::Delivered => report.delivered += 1,
                        Delivery::Gone => report.gone.push(key),
                        Delivery::Failed => report.failed += 1,
                        Delivery::Exhausted => report.exhausted.push(key.connection_id),
                        Delivery::Deferred => report.deferred.push(key.connection_id),
                    }
                    futures::future::ready(report)
                },
            )
            .await
    }

    /// Posts to one connection, retrying 429/5xx/timeouts with full-jitter backoff while the
    /// deadline allows. Returns the outcome and how many retries it took.
    async fn deliver_one(
        &self,
        connection_id: &str,
        payload: &[u8],
        deadline: Deadline,
    ) -> (Delivery, u32) {
        let limits = &self.limits;
        let mut retries = 0;
        loop {
            // A post may take up to its timeout; it must end before the safety margin.
            if !deadline.allows(limits.post_timeout, limits.safety_margin) {
                let delivery = if retries == 0 {
                    Delivery::Deferred
                } else {
                    Delivery::Exhausted
                };
                return (delivery, retries);
            }
            match self.poster.post(connection_id, payload).await {
                PostOutcome::Delivered => return (Delivery::Delivered, retries),
                PostOutcome::Gone => {
                    tracing::debug!(connection_id, "connection gone");
                    return (Delivery::Gone, retries);
                }
                PostOutcome::Failed(reason) => {
                    tracing::warn!(connection_id, %reason, "post failed and cannot be retried");
                    return (Delivery::Failed, retries);
                }
                PostOutcome::Retryable(reason) => {
                    if retries + 1 >= limits.max_post_attempts {
                        tracing::debug!(connection_id, %reason, "post still failing after the last attempt");
                        return (Delivery::Exhausted, retries);
                    }
                    let wait = full_jitter(retries, limits.backoff_base, limits.backoff_cap);
                    if !deadline.allows(
                        wait.saturating_add(limits.post_timeout),
                        limits.safety_margin,
                    ) {
                        return (Delivery::Exhausted, retries);
                    }
                    tracing::debug!(connection_id, %reason, wait_ms = wait.as_millis() as u64, "retrying post");
                    tokio::time::sleep(wait).await;
                    retries += 1;
                }
            }
        }
    }

    /// Deletes stale connection items, then stale subscription items, each table in batches
    /// of 25 retried with backoff. A failure is only logged: the items stay stale and are
    /// pruned next time (or by TTL).
    async fn prune(
        &self,
        connections: Vec<ConnectionKey>,
        subscriptions: Vec<SubscriptionKey>,
        deadline: Deadline,
    ) {
        self.delete_stale(
            "connections",
            connections,
            |batch| async move { self.store.delete_batch(&batch).await },
            deadline,
        )
        .await;
        self.delete_stale(
            "subscriptions",
            subscriptions,
            |batch| async move { self.store.delete_subscriptions(&batch).await },
            deadline,
        )
        .await;
    }

    /// Deletes `stale` items of one table with `delete` (one batch of at most 25 keys, which
    /// returns the keys left unprocessed), `lookup_concurrency` batches at a time.
    async fn delete_stale<K, F, Fut>(
        &self,
        table: &'static str,
        stale: Vec<K>,
        delete: F,
        deadline: Deadline,
    ) where
        K: Clone,
        F: Fn(Vec<K>) -> Fut,
        Fut: Future<Output = Result<Vec<K>, StoreError>>,
    {
        if stale.is_empty() {
            return;
        }
        let limits = &self.limits;
        let delete = &delete;
        let left: usize = futures::stream::iter(stale.chunks(DELETE_BATCH_SIZE))
            .map(|batch| async move {
                let mut pending = batch.to_vec();
                let mut attempt = 0;
                loop {
                    match delete(pending.clone()).await {
                        Ok(unprocessed) => pending = unprocessed,
                        Err(error) => tracing::warn!(
                            %error,
                            table,
                            keys = pending.len(),
                            "deleting stale items failed"
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
                table,
                left,
                pruned = stale.len() - left,
                "some stale items were not deleted"
            );
        } else {
            tracing::info!(table, pruned = stale.len(), "stale items deleted");
        }
    }

    /// Sends the connections that did not get the payload (and only them) back to the queue,
    /// or to the dead-letter queue once the generations are used up: the request narrowed to
    /// them ([`Request::narrowed`]), serialized.
    async fn requeue_remainder(
        &self,
        request: &Request,
        publication: Option<&Planned>,
        report: &DeliveryReport,
        metrics: &mut Metrics,
    ) -> Result<(), PusherError> {
        if report.exhausted.is_empty() && report.deferred.is_empty() {
            return Ok(());
        }
        // Connections merely not reached in time did not fail; but a request that made no
        // progress at all still spends a generation, so it cannot circulate forever.
        let spends_generation = !report.exhausted.is_empty() || report.attempted == 0;
        let generation = request.generation + u32::from(spends_generation);
        let remainder: Vec<String> = report
            .exhausted
            .iter()
            .chain(&report.deferred)
            .cloned()
            .collect();
        // Everything but the connection ids: the same in every chunk's body.
        let frame = body(&request.narrowed(publication, Vec::new())).len();
        let chunks = chunk_ids(
            &remainder,
            (MAX_REQUEUE_BODY_BYTES + 2).saturating_sub(frame),
        );
        let bodies = chunks.into_iter().map(|chunk| {
            (
                chunk.len() as u64,
                body(&request.narrowed(publication, chunk)),
            )
        });
        if generation > self.limits.max_generations {
            tracing::error!(
                connections = remainder.len(),
                generation,
                max_generations = self.limits.max_generations,
                "delivery failed in every generation; sending the remainder to the dead-letter queue"
            );
            for (connections, body) in bodies {
                self.outbox
                    .dead_letter(body, "retries_exhausted")
                    .await
                    .map_err(PusherError::DeadLetter)?;
                metrics.failed += connections;
            }
        } else {
            let delay = requeue_delay(self.limits.requeue_delay, generation);
            tracing::warn!(
                connections = remainder.len(),
                exhausted = report.exhausted.len(),
                deferred = report.deferred.len(),
                generation,
                "re-queueing the connections that did not get the payload"
            );
            for (connections, body) in bodies {
                self.outbox
                    .requeue(body, generation, delay)
                    .await
                    .map_err(PusherError::Requeue)?;
                metrics.requeued += connections;
            }
        }
        Ok(())
    }
}

/// Splits ids into lists whose JSON fits in `budget` bytes (at least one id per list).
fn chunk_ids(ids: &[String], budget: usize) -> Vec<Vec<String>> {
    let mut chunks = Vec::new();
    let mut current: Vec<String> = Vec::new();
    let mut size = 2;
    for id in ids {
        // Quotes, a comma and JSON escapes: the serialized length is exact.
        let cost = serde_json::to_string(id)
            .map(|s| s.len())
            .unwrap_or(id.len() + 2)
            + 1;
        if !current.is_empty() && size + cost > budget {
            chunks.push(std::mem::take(&mut current));
            size = 2;
        }
        size += cost;
        current.push(id.clone());
    }
    if !current.is_empty() {
        chunks.push(current);
    }
    chunks
}

/// The SQS delay of a re-queued request: the base delay doubled per generation.
pub fn requeue_delay(base: Duration, generation: u32) -> Duration {
    base.saturating_mul(
        1u32.checked_shl(generation.saturating_sub(1).min(16))
            .unwrap_or(u32::MAX),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_chunked_to_fit_the_budget() {
        let ids: Vec<String> = (0..10).map(|i| format!("conn-{i}")).collect();
        let chunks = chunk_ids(&ids, 30);
        assert!(chunks.len() > 1);
        assert_eq!(chunks.concat(), ids);
        for chunk in &chunks {
            assert!(
                serde_json::to_string(chunk).unwrap().len() <= 30,
                "{chunk:?}"
            );
        }
        assert_eq!(chunk_ids(&ids, 1).len(), 10);
    }

    #[test]
    fn requeue_delay_doubles_per_generation() {
        let base = Duration::from_secs(5);
        assert_eq!(requeue_delay(base, 1), Duration::from_secs(5));
        assert_eq!(requeue_delay(base, 2), Duration::from_secs(10));
        assert_eq!(requeue_delay(base, 3), Duration::from_secs(20));
    }
}
