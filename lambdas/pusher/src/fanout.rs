//! Fanning one valid request out: find the targets, post to each with bounded concurrency and
//! retries, prune the stale ones, re-queue (narrowed) whatever still failed.

use std::collections::HashSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::{StreamExt, TryStreamExt};

use crate::config::Limits;
use crate::deadline::{full_jitter, Deadline};
use crate::metrics::Metrics;
use crate::outbox::{Outbox, OutboxError};
use crate::poster::{PostOutcome, Poster};
use crate::request::{requeue_body, shard_body, Job, Shard, Targets};
use crate::store::{ConnectionItem, ConnectionKey, ConnectionStore, StoreError, DELETE_BATCH_SIZE};

/// The pusher's dependencies: the three seams and the tunables. Shared by reference across
/// invocations; holds no per-request state.
#[derive(Debug, Clone)]
pub struct Pusher<S, P, O> {
    pub store: S,
    pub poster: P,
    pub outbox: O,
    pub limits: Limits,
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

/// The targets of a request, after filtering.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Selection {
    /// Live, not excluded, each connection once.
    pub live: Vec<ConnectionKey>,
    /// `expires_at` passed: to be pruned, never posted to.
    pub expired: Vec<ConnectionKey>,
}

/// Deduplicates by connection id, drops excluded users' connections and excluded connection
/// ids, and separates expired items. Exclusions are hash sets, so any number costs the same.
pub fn select(
    found: Vec<ConnectionItem>,
    exclude_users: &[String],
    exclude_connections: &[String],
    now_epoch_seconds: i64,
) -> Selection {
    let excluded: HashSet<&str> = exclude_users.iter().map(String::as_str).collect();
    let excluded_connections: HashSet<&str> =
        exclude_connections.iter().map(String::as_str).collect();
    let mut seen: HashSet<String> = HashSet::with_capacity(found.len());
    let mut selection = Selection::default();
    for item in found {
        if !seen.insert(item.key.connection_id.clone()) {
            continue;
        }
        if !item.is_live(now_epoch_seconds) {
            selection.expired.push(item.key);
        } else if !excluded.contains(item.key.user_id.as_str())
            && !excluded_connections.contains(item.key.connection_id.as_str())
        {
            selection.live.push(item.key);
        }
    }
    selection
}

/// How posting to one connection ended in this invocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Delivery {
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
pub(crate) struct DeliveryReport {
    pub(crate) delivered: u64,
    pub(crate) failed: u64,
    pub(crate) retried: u64,
    pub(crate) attempted: u64,
    pub(crate) gone: Vec<ConnectionKey>,
    pub(crate) exhausted: Vec<String>,
    pub(crate) deferred: Vec<String>,
}

/// SQS's message size limit, minus room for attributes and the JSON around the ids.
pub(crate) const MAX_REQUEUE_BODY_BYTES: usize = 256 * 1024 - 2 * 1024;

/// The most shards a broadcast is split into at once (10 million connections at the default
/// threshold); a table larger still is covered by the shards' continuations.
pub const MAX_SHARDS: u64 = 1_000;

/// What one invocation reads of a broadcast, and what it hands on.
struct BroadcastPlan {
    /// Read here, each up to `quota` items.
    ranges: Vec<Shard>,
    quota: u32,
    /// Sent to the queue for other invocations.
    siblings: Vec<Shard>,
}

fn epoch_seconds() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl<S: ConnectionStore, P: Poster, O: Outbox> Pusher<S, P, O> {
    /// Fans one valid request out. The metrics count what happened even when it fails.
    pub async fn push(&self, job: &Job, deadline: Deadline) -> (Metrics, Result<(), PusherError>) {
        let mut metrics = Metrics::default();
        let (found, shards) = match self.look_up(job).await {
            Ok(found) => found,
            Err(error) => return (metrics, Err(error.into())),
        };
        // Before anything is posted: a failure here redelivers a message that reached nobody.
        if let Err(error) = self.enqueue_shards(job, &shards).await {
            return (metrics, Err(PusherError::Shard(error)));
        }
        metrics.shards = shards.len() as u64;
        let selection = select(
            found,
            &job.exclude_users,
            &job.exclude_connections,
            epoch_seconds(),
        );
        tracing::debug!(
            live = selection.live.len(),
            expired = selection.expired.len(),
            "targets selected"
        );

        let mut report = self.deliver(selection.live, &job.payload, deadline).await;
        metrics.delivered = report.delivered;
        metrics.failed = report.failed;
        metrics.retried = report.retried;

        let mut stale = selection.expired;
        stale.extend(std::mem::take(&mut report.gone));
        metrics.stale = stale.len() as u64;
        self.prune(stale, deadline).await;

        let result = self.requeue_remainder(job, &report, &mut metrics).await;
        (metrics, result)
    }

    /// Every candidate item (expired ones included, duplicates possible), and the shards of
    /// a large broadcast that other invocations are to handle.
    async fn look_up(&self, job: &Job) -> Result<(Vec<ConnectionItem>, Vec<Shard>), StoreError> {
        let concurrency = self.limits.lookup_concurrency.max(1);
        match &job.targets {
            Targets::Broadcast if self.can_shard(job) || job.shard.is_some() => {
                let plan = self.plan_broadcast(job).await;
                let quota = plan.quota;
                let pages: Vec<_> = futures::stream::iter(plan.ranges)
                    .map(|range| async move {
                        let after = range.after.clone().map(ConnectionKey::from);
                        let page = self
                            .store
                            .scan_page(range.segment, range.segments, after, quota)
                            .await?;
                        Ok::<_, StoreError>((range, page))
                    })
                    .buffer_unordered(concurrency)
                    .try_collect()
                    .await?;
                let mut shards = plan.siblings;
                let mut found = Vec::new();
                for (range, page) in pages {
                    found.extend(page.items);
                    if let Some(next) = page.next {
                        // The rest of this segment: the next invocation goes on from here.
                        shards.push(Shard {
                            after: Some(next.into()),
                            ..range
                        });
                    }
                }
                Ok((found, shards))
            }
            Targets::Broadcast => {
                let segments = self.limits.scan_segments.max(1);
                let found = futures::stream::iter(0..segments)
                    .map(|segment| self.store.scan_segment(segment, segments))
                    .buffer_unordered(concurrency)
                    .try_concat()
                    .await?;
                Ok((found, Vec::new()))
            }
            Targets::Selected { users, connections } => {
                // An excluded user's connections would be dropped anyway: skip the Query.
                let excluded: HashSet<&str> =
                    job.exclude_users.iter().map(String::as_str).collect();
                let lookups = users
                    .iter()
                    .filter(|user| !excluded.contains(user.as_str()))
                    .map(|user| Lookup::User(user))
                    .chain(
                        connections
                            .iter()
                            .map(|connection| Lookup::Connection(connection)),
                    );
                let found = futures::stream::iter(lookups)
                    .map(|lookup| async move {
                        match lookup {
                            Lookup::User(user) => self.store.query_user(user).await,
                            Lookup::Connection(id) => {
                                Ok(self.store.find_connection(id).await?.into_iter().collect())
                            }
                        }
                    })
                    .buffer_unordered(concurrency)
                    .try_concat()
                    .await?;
                Ok((found, Vec::new()))
            }
            // Publications are fanned out by `Pusher::publish` (crate::publish), which reads
            // the subscriptions table instead; they never come through here.
            Targets::Channels(_) => {
                tracing::error!("a publication to channels was pushed as a plain request");
                Ok((Vec::new(), Vec::new()))
            }
        }
    }

    /// Whether this broadcast may hand shards to other invocations: a threshold is set, the
    /// queue is there, and a shard's message fits in SQS.
    fn can_shard(&self, job: &Job) -> bool {
        self.limits.shard_threshold > 0
            && self.outbox.can_enqueue_shards()
            && shard_body(&job.exclude_users, &job.exclude_connections, &job.payload).len()
                <= MAX_REQUEUE_BODY_BYTES
    }

    /// A shard reads its own range. A back end's broadcast asks the table's approximate size:
    /// over the threshold, it is split into that many Scan segments (this invocation keeps
    /// segment 0, the queue gets the others); otherwise it is read here in the usual parallel
    /// segments, each to its share of the threshold. Either way no invocation reads more than
    /// the threshold: a range with more left hands its remainder on (a stale estimate costs
    /// time, never the bound).
    async fn plan_broadcast(&self, job: &Job) -> BroadcastPlan {
        let can_shard = self.can_shard(job);
        let threshold = if can_shard {
            self.limits.shard_threshold
        } else {
            u32::MAX
        };
        if let Some(shard) = &job.shard {
            return BroadcastPlan {
                ranges: vec![shard.clone()],
                quota: threshold,
                siblings: Vec::new(),
            };
        }
        let estimate = match self.store.approximate_count().await {
            Ok(estimate) => estimate,
            Err(error) => {
                tracing::warn!(%error, "no item count; the broadcast is split as it is read");
                None
            }
        };
        let shards = estimate
            .map_or(1, |count| count.div_ceil(u64::from(threshold)))
            .clamp(1, MAX_SHARDS) as u32;
        let scan = |segment, segments| Shard {
            segment,
            segments,
            after: None,
        };
        if shards > 1 {
            tracing::info!(
                estimate,
                shards,
                threshold,
                "splitting the broadcast into shards"
            );
            BroadcastPlan {
                ranges: vec![scan(0, shards)],
                quota: threshold,
                siblings: (1..shards).map(|segment| scan(segment, shards)).collect(),
            }
        } else {
            // Shares that add up to at most the threshold.
            let segments = self.limits.scan_segments.clamp(1, threshold.max(1));
            BroadcastPlan {
                ranges: (0..segments)
                    .map(|segment| scan(segment, segments))
                    .collect(),
                quota: threshold / segments,
                siblings: Vec::new(),
            }
        }
    }

    /// Sends the shards to the queue, `lookup_concurrency` at a time.
    async fn enqueue_shards(&self, job: &Job, shards: &[Shard]) -> Result<(), OutboxError> {
        if shards.is_empty() {
            return Ok(());
        }
        let body = shard_body(&job.exclude_users, &job.exclude_connections, &job.payload);
        futures::stream::iter(shards)
            .map(|shard| {
                self.outbox
                    .enqueue_shard(body.clone(), shard.attribute(), job.generation)
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

    pub(crate) async fn deliver(
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
    pub(crate) async fn deliver_one(
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

    /// Deletes stale items in batches of 25, retrying unprocessed items with backoff. A
    /// failure here is only logged: the items stay stale and are pruned next time (or by TTL).
    pub(crate) async fn prune(&self, stale: Vec<ConnectionKey>, deadline: Deadline) {
        if stale.is_empty() {
            return;
        }
        let left: usize = futures::stream::iter(stale.chunks(DELETE_BATCH_SIZE))
            .map(|batch| self.delete_with_retries(batch.to_vec(), deadline))
            .buffer_unordered(self.limits.lookup_concurrency.max(1))
            .fold(0, |left, batch_left| {
                futures::future::ready(left + batch_left)
            })
            .await;
        if left > 0 {
            tracing::warn!(
                left,
                pruned = stale.len() - left,
                "some stale connections were not deleted"
            );
        } else {
            tracing::info!(pruned = stale.len(), "stale connections deleted");
        }
    }

    /// Returns how many keys are still not deleted.
    async fn delete_with_retries(
        &self,
        mut pending: Vec<ConnectionKey>,
        deadline: Deadline,
    ) -> usize {
        let limits = &self.limits;
        let mut attempt = 0;
        loop {
            match self.store.delete_batch(&pending).await {
                Ok(unprocessed) => pending = unprocessed,
                Err(error) => {
                    tracing::warn!(%error, keys = pending.len(), "deleting stale connections failed")
                }
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
    }

    /// Sends the connections that did not get the message (and only them) back to the queue,
    /// or to the dead-letter queue once the generations are used up.
    pub(crate) async fn requeue_remainder(
        &self,
        job: &Job,
        report: &DeliveryReport,
        metrics: &mut Metrics,
    ) -> Result<(), PusherError> {
        if report.exhausted.is_empty() && report.deferred.is_empty() {
            return Ok(());
        }
        // Connections merely not reached in time did not fail; but a request that made no
        // progress at all still spends a generation, so it cannot circulate forever.
        let spends_generation = !report.exhausted.is_empty() || report.attempted == 0;
        let generation = job.generation + u32::from(spends_generation);
        let remainder: Vec<String> = report
            .exhausted
            .iter()
            .chain(&report.deferred)
            .cloned()
            .collect();
        let id_bytes = job
            .publication_id
            .as_ref()
            .map_or(0, |id| serde_json::to_string(id).map_or(0, |id| id.len()));
        let chunks = chunk_ids(
            &remainder,
            MAX_REQUEUE_BODY_BYTES.saturating_sub(job.payload.len() + id_bytes),
        );
        if generation > self.limits.max_generations {
            tracing::error!(
                connections = remainder.len(),
                generation,
                max_generations = self.limits.max_generations,
                "delivery failed in every generation; sending the remainder to the dead-letter queue"
            );
            for chunk in &chunks {
                let body = requeue_body(job, chunk);
                self.outbox
                    .dead_letter(body, "retries_exhausted")
                    .await
                    .map_err(PusherError::DeadLetter)?;
                metrics.failed += chunk.len() as u64;
            }
        } else {
            let delay = requeue_delay(self.limits.requeue_delay, generation);
            tracing::warn!(
                connections = remainder.len(),
                exhausted = report.exhausted.len(),
                deferred = report.deferred.len(),
                generation,
                "re-queueing the connections that did not get the message"
            );
            for chunk in &chunks {
                let body = requeue_body(job, chunk);
                self.outbox
                    .requeue(body, generation, delay)
                    .await
                    .map_err(PusherError::Requeue)?;
                metrics.requeued += chunk.len() as u64;
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy)]
enum Lookup<'a> {
    User(&'a str),
    Connection(&'a str),
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

    fn item(user: &str, connection: &str, expires_at: Option<i64>) -> ConnectionItem {
        ConnectionItem {
            key: ConnectionKey {
                user_id: user.into(),
                connection_id: connection.into(),
            },
            expires_at,
        }
    }

    #[test]
    fn selection_dedups_excludes_and_separates_expired() {
        let found = vec![
            item("u1", "a", Some(200)),
            item("u1", "a", Some(200)),
            item("u2", "b", Some(100)),
            item("u3", "c", Some(200)),
            item("u3", "d", Some(50)),
            item("u4", "e", None),
            item("u5", "f", Some(200)),
        ];
        let selection = select(found, &["u3".into()], &["f".into()], 100);
        let live: Vec<&str> = selection
            .live
            .iter()
            .map(|k| k.connection_id.as_str())
            .collect();
        let expired: Vec<&str> = selection
            .expired
            .iter()
            .map(|k| k.connection_id.as_str())
            .collect();
        assert_eq!(live, ["a", "e"], "u3 and connection f are excluded");
        // Expiry is checked at `expires_at <= now`; an excluded user's expired item is pruned too.
        assert_eq!(expired, ["b", "d"]);
    }

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
