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
use crate::poster::{DeleteOutcome, PostOutcome, Poster};
use crate::request::{body, Action, Fields, Planned, Request, Shard, Targets};
use crate::store::{ConnectionKey, ConnectionStore, StoreError, DELETE_BATCH_SIZE};
use crate::subscriptions::{SubscriptionItem, SubscriptionKey, SubscriptionStore};
use crate::targets::{self, Part, Selection, Target};

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
    /// Writing or deleting a subscription item failed: nothing was posted yet, and the
    /// changes are idempotent, so the whole request can be redelivered.
    #[error("changing the subscriptions failed: {0}")]
    Subscriptions(StoreError),
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
            | PusherError::Subscriptions(_)
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

/// How one target of a `disconnect` ended in this invocation. `data`: how its data post
/// ended, when the request has data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Closing {
    /// The close was accepted.
    Closed { data: Option<Delivery> },
    /// 410 to the data post or to the close: the connection was gone already.
    Gone { data: Option<Delivery> },
    /// The close was refused for good.
    Failed { data: Option<Delivery> },
    /// The data was delivered (or failed for good, or there was none) but the close was not
    /// done (`Exhausted` or `Deferred`): only the close is left.
    ClosePending {
        data: Option<Delivery>,
        close: Delivery,
    },
    /// The data was not delivered (`Exhausted` or `Deferred`): the data and the close are left.
    DataPending(Delivery),
}

impl Closing {
    /// Whether anything was tried for this target (its first call was not deferred).
    fn attempted(&self) -> bool {
        match self {
            Closing::DataPending(delivery) => *delivery != Delivery::Deferred,
            Closing::ClosePending { data: None, close } => *close != Delivery::Deferred,
            _ => true,
        }
    }
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

fn epoch_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn epoch_seconds() -> i64 {
    epoch_millis().div_euclid(1000)
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
        match request.action() {
            Action::Push => {}
            Action::Disconnect => return self.disconnect(request, deadline).await,
            Action::Subscribe | Action::Unsubscribe => {
                return self.change_subscriptions(request, deadline).await
            }
        }
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
                    true,
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
        self.retrying(connection_id, deadline, "post", || {
            self.poster.post(connection_id, payload)
        })
        .await
    }

    /// Closes one connection, retried exactly like a post ([`Pusher::deliver_one`]):
    /// `Delivered` is closed, `Gone` was gone already.
    async fn close_one(&self, connection_id: &str, deadline: Deadline) -> (Delivery, u32) {
        self.retrying(connection_id, deadline, "close", || async {
            match self.poster.close(connection_id).await {
                DeleteOutcome::Closed => PostOutcome::Delivered,
                DeleteOutcome::Gone => PostOutcome::Gone,
                DeleteOutcome::Retryable(reason) => PostOutcome::Retryable(reason),
                DeleteOutcome::Failed(reason) => PostOutcome::Failed(reason),
            }
        })
        .await
    }

    /// One management-API call (`attempt`) to one connection, retrying 429/5xx/timeouts with
    /// full-jitter backoff while the deadline allows.
    async fn retrying<F, Fut>(
        &self,
        connection_id: &str,
        deadline: Deadline,
        what: &'static str,
        attempt: F,
    ) -> (Delivery, u32)
    where
        F: Fn() -> Fut,
        Fut: Future<Output = PostOutcome>,
    {
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
            match attempt().await {
                PostOutcome::Delivered => return (Delivery::Delivered, retries),
                PostOutcome::Gone => {
                    tracing::debug!(connection_id, what, "connection gone");
                    return (Delivery::Gone, retries);
                }
                PostOutcome::Failed(reason) => {
                    tracing::warn!(connection_id, what, %reason, "failed and cannot be retried");
                    return (Delivery::Failed, retries);
                }
                PostOutcome::Retryable(reason) => {
                    if retries + 1 >= limits.max_post_attempts {
                        tracing::debug!(connection_id, what, %reason, "still failing after the last attempt");
                        return (Delivery::Exhausted, retries);
                    }
                    let wait = full_jitter(retries, limits.backoff_base, limits.backoff_cap);
                    if !deadline.allows(
                        wait.saturating_add(limits.post_timeout),
                        limits.safety_margin,
                    ) {
                        return (Delivery::Exhausted, retries);
                    }
                    tracing::debug!(connection_id, what, %reason, wait_ms = wait.as_millis() as u64, "retrying");
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
        tracing::warn!(
            exhausted = report.exhausted.len(),
            deferred = report.deferred.len(),
            "some connections did not get the payload"
        );
        self.requeue_connections(
            remainder,
            |chunk| request.narrowed(publication, chunk),
            true,
            generation,
            metrics,
        )
        .await
    }

    /// Sends `remainder` back to the queue as `narrow` makes their request (`verbatim`: its
    /// data is a frame, `sumu_frame`), in as many bodies as SQS's size needs, marked with
    /// `generation` — or to the dead-letter queue (`retries_exhausted`) once `generation` is
    /// past the last one.
    async fn requeue_connections(
        &self,
        remainder: Vec<String>,
        narrow: impl Fn(Vec<String>) -> Fields,
        verbatim: bool,
        generation: u32,
        metrics: &mut Metrics,
    ) -> Result<(), PusherError> {
        if remainder.is_empty() {
            return Ok(());
        }
        // Everything but the connection ids: the same in every chunk's body.
        let frame = body(&narrow(Vec::new())).len();
        let chunks = chunk_ids(
            &remainder,
            (MAX_REQUEUE_BODY_BYTES + 2).saturating_sub(frame),
        );
        let bodies = chunks
            .into_iter()
            .map(|chunk| (chunk.len() as u64, body(&narrow(chunk))));
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
                generation,
                "re-queueing the connections that are not done"
            );
            for (connections, body) in bodies {
                self.outbox
                    .requeue(body, generation, delay, verbatim)
                    .await
                    .map_err(PusherError::Requeue)?;
                metrics.requeued += connections;
            }
        }
        Ok(())
    }

    /// A `disconnect`: each live target gets the request's data first when it has some (as
    /// any push: retried, and a 410 is a stale connection), then is closed with the
    /// management API's DELETE (retried the same way; 410 is closed already). Posts and closes
    /// run `post_concurrency` targets at a time, each target's close only after its post
    /// answered. What is not done is re-queued narrowed ([`Request::narrowed_disconnect`]): with
    /// the data for targets that did not get it, without it for those whose close alone is
    /// left, so nobody gets the data twice.
    async fn disconnect(
        &self,
        request: &Request,
        deadline: Deadline,
    ) -> (Metrics, Result<(), PusherError>) {
        let mut metrics = Metrics::default();
        let found =
            match targets::live_connections(&self.store, &self.limits, request, epoch_seconds())
                .await
            {
                Ok(found) => found,
                Err(error) => return (metrics, Err(error.into())),
            };
        let payload = request
            .frame
            .as_ref()
            .map(|frame| frame.bytes.get().as_bytes());
        let outcomes: Vec<(ConnectionKey, Closing, u32)> = futures::stream::iter(found.live)
            .map(|item| async move {
                let id = item.key.connection_id.as_str();
                let mut retries = 0;
                let mut data = None;
                if let Some(payload) = payload {
                    let (delivery, tries) = self.deliver_one(id, payload, deadline).await;
                    retries += tries;
                    match delivery {
                        // A post that can never succeed must not keep the connection open.
                        Delivery::Delivered | Delivery::Failed => data = Some(delivery),
                        Delivery::Gone => return (item.key, Closing::Gone { data: None }, retries),
                        Delivery::Exhausted | Delivery::Deferred => {
                            return (item.key, Closing::DataPending(delivery), retries)
                        }
                    }
                }
                let (close, tries) = self.close_one(id, deadline).await;
                retries += tries;
                let closing = match close {
                    Delivery::Delivered => Closing::Closed { data },
                    Delivery::Gone => Closing::Gone { data },
                    Delivery::Failed => Closing::Failed { data },
                    Delivery::Exhausted | Delivery::Deferred => {
                        Closing::ClosePending { data, close }
                    }
                };
                (item.key, closing, retries)
            })
            .buffer_unordered(self.limits.post_concurrency.max(1))
            .collect()
            .await;

        let mut stale = found.expired;
        metrics.stale += stale.len() as u64;
        let mut with_data = Vec::new();
        let mut close_only = Vec::new();
        // As for a push: exhausted retries spend a generation, and so does a round in which
        // nothing could even be tried (so a request cannot circulate forever).
        let (mut exhausted, mut attempted) = (false, false);
        for (key, closing, retries) in outcomes {
            metrics.retried += u64::from(retries);
            attempted |= closing.attempted();
            let data = match closing {
                Closing::Closed { data } => {
                    metrics.closed += 1;
                    data
                }
                Closing::Gone { data } => {
                    // Gone before the close (or before the data): closed all the same.
                    metrics.closed += 1;
                    metrics.stale += 1;
                    stale.push(key);
                    data
                }
                Closing::Failed { data } => {
                    metrics.failed += 1;
                    data
                }
                Closing::ClosePending { data, close } => {
                    exhausted |= close == Delivery::Exhausted;
                    close_only.push(key.connection_id);
                    data
                }
                Closing::DataPending(delivery) => {
                    exhausted |= delivery == Delivery::Exhausted;
                    with_data.push(key.connection_id);
                    None
                }
            };
            match data {
                Some(Delivery::Delivered) => metrics.delivered += 1,
                Some(Delivery::Failed) => metrics.failed += 1,
                _ => {}
            }
        }
        self.prune(stale, Vec::new(), deadline).await;
        if with_data.is_empty() && close_only.is_empty() {
            return (metrics, Ok(()));
        }
        let generation = request.generation + u32::from(exhausted || !attempted);
        let mut result = self
            .requeue_connections(
                with_data,
                |chunk| request.narrowed_disconnect(chunk, true),
                false,
                generation,
                &mut metrics,
            )
            .await;
        if result.is_ok() {
            result = self
                .requeue_connections(
                    close_only,
                    |chunk| request.narrowed_disconnect(chunk, false),
                    false,
                    generation,
                    &mut metrics,
                )
                .await;
        }
        (metrics, result)
    }

    /// A `subscribe` or `unsubscribe`: every live target connection's subscription item to
    /// the request's pattern written (unless one exists) or deleted (uncounting a counted
    /// one), `lookup_concurrency` at a time; then, when the request has data, the data to the
    /// same connections, exactly as a push. A failed write fails the record before anything
    /// is posted: SQS redelivers it, and repeating the changes is harmless.
    async fn change_subscriptions(
        &self,
        request: &Request,
        deadline: Deadline,
    ) -> (Metrics, Result<(), PusherError>) {
        let mut metrics = Metrics::default();
        let Some(pattern) = &request.channel else {
            // request::parse_message never makes one without its pattern.
            tracing::error!("a subscription change without a channel; nothing done");
            return (metrics, Ok(()));
        };
        let now_ms = epoch_millis();
        let now = now_ms.div_euclid(1000);
        let found = match targets::live_connections(&self.store, &self.limits, request, now).await {
            Ok(found) => found,
            Err(error) => return (metrics, Err(error.into())),
        };
        let subscribe = request.action() == Action::Subscribe;
        let pattern = pattern.to_string();
        let changes: Vec<Result<bool, StoreError>> = futures::stream::iter(&found.live)
            .map(|connection| {
                let key = SubscriptionKey {
                    channel: pattern.clone(),
                    connection_id: connection.key.connection_id.clone(),
                };
                async move {
                    if subscribe {
                        let item = SubscriptionItem {
                            key,
                            user_id: connection.key.user_id.clone(),
                            // A connection item without `expires_at` (written by hand): API
                            // Gateway ends every connection within 2 hours of now.
                            expires_at: Some(connection.expires_at.unwrap_or(
                                now + sumu_wire::table::MAX_CONNECTION_SECONDS,
                            )),
                            subscribed_at: Some(now_ms),
                        };
                        self.store.put_subscription(&item).await
                    } else {
                        match self.store.remove_subscription(&key).await? {
                            None => Ok(false),
                            Some(counted) => {
                                if counted
                                    && !self.store.uncount_subscription(&connection.key).await?
                                {
                                    tracing::warn!(connection_id = %connection.key.connection_id, "a counted subscription's connection had nothing to uncount");
                                }
                                Ok(true)
                            }
                        }
                    }
                }
            })
            .buffer_unordered(self.limits.lookup_concurrency.max(1))
            .collect()
            .await;
        let mut failure = None;
        for change in changes {
            match change {
                Ok(true) if subscribe => metrics.subscribed += 1,
                Ok(true) => metrics.unsubscribed += 1,
                Ok(false) => {}
                Err(error) => failure = Some(error),
            }
        }
        tracing::info!(
            channel = %pattern,
            connections = found.live.len(),
            subscribed = metrics.subscribed,
            unsubscribed = metrics.unsubscribed,
            "subscriptions changed"
        );
        if let Some(error) = failure {
            self.prune(found.expired, Vec::new(), deadline).await;
            return (metrics, Err(PusherError::Subscriptions(error)));
        }
        let Some(frame) = &request.frame else {
            metrics.stale += found.expired.len() as u64;
            self.prune(found.expired, Vec::new(), deadline).await;
            return (metrics, Ok(()));
        };
        let part = Part {
            publication: None,
            payload: frame.bytes.get().as_bytes(),
            selection: Selection {
                live: found
                    .live
                    .into_iter()
                    .map(|connection| Target {
                        key: connection.key,
                        via: Vec::new(),
                    })
                    .collect(),
                expired: found.expired,
                expired_subscriptions: Vec::new(),
            },
        };
        let result = self
            .deliver_part(request, part, deadline, &mut metrics)
            .await;
        (metrics, result)
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
