//! Counters of one invocation, and where they go when it ends: a [`MetricsSink`], in the
//! Lambda [`EmfLog`] (one CloudWatch Embedded Metric Format line).

use std::ops::AddAssign;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// What one invocation (or one request within it) did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Metrics {
    /// Posts the management API accepted.
    pub delivered: u64,
    /// Connections found stale (410 Gone, or `expires_at` passed) and pruned.
    pub stale: u64,
    /// Connections given up on: a non-retryable answer, or retries exhausted in the last
    /// generation (then dead-lettered).
    pub failed: u64,
    /// Post attempts after the first one.
    pub retried: u64,
    /// Connections handed to a narrowed re-queued request.
    pub requeued: u64,
    /// Requests refused as invalid (sent to the dead-letter path).
    pub rejected: u64,
    /// Shards of a large broadcast handed to other invocations through the queue.
    pub shards: u64,
    /// Publications to a channel fanned out (one per channel of a request; a client's
    /// accepted `emit` is one).
    pub publications: u64,
    /// Client `emit`s refused (no publish grant, bad channel, bad `data`): the sender got an
    /// error frame and nobody else anything.
    pub refused_emits: u64,
    /// Connections a `disconnect` closed (the management API's DELETE answered 204, or 410:
    /// gone already).
    pub closed: u64,
    /// Subscription items a `subscribe` wrote (an existing one is left alone, not counted).
    pub subscribed: u64,
    /// Subscription items an `unsubscribe` deleted.
    pub unsubscribed: u64,
}

impl AddAssign for Metrics {
    fn add_assign(&mut self, other: Metrics) {
        self.delivered += other.delivered;
        self.stale += other.stale;
        self.failed += other.failed;
        self.retried += other.retried;
        self.requeued += other.requeued;
        self.rejected += other.rejected;
        self.shards += other.shards;
        self.publications += other.publications;
        self.refused_emits += other.refused_emits;
        self.closed += other.closed;
        self.subscribed += other.subscribed;
        self.unsubscribed += other.unsubscribed;
    }
}

/// Where an invocation's counters go when it ends: the [`Pusher`](crate::Pusher) holds one, so
/// the handler only counts and a test reads what an invocation reported, as a fake.
pub trait MetricsSink: Sync {
    /// One invocation's counters (every message of its batch) and how long it took.
    fn record(&self, metrics: &Metrics, duration: Duration);
}

/// The Lambda's sink: one EMF line per invocation, printed straight to stdout, because
/// CloudWatch only extracts metrics from a log event that *is* the EMF object, so it must not be
/// wrapped by the log formatter.
#[derive(Debug, Clone, Copy, Default)]
pub struct EmfLog;

impl MetricsSink for EmfLog {
    fn record(&self, metrics: &Metrics, duration: Duration) {
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        println!("{}", metrics.emf_line(duration.as_millis() as u64, now_ms));
    }
}

/// The CloudWatch namespace of the pusher's metrics.
const NAMESPACE: &str = "sumu";

impl Metrics {
    /// One EMF JSON object: CloudWatch turns it into metrics without any API call.
    fn emf_line(&self, duration_ms: u64, timestamp_ms: u64) -> String {
        let metric = |name: &str, unit: &str| serde_json::json!({ "Name": name, "Unit": unit });
        serde_json::json!({
            "_aws": {
                "Timestamp": timestamp_ms,
                "CloudWatchMetrics": [{
                    "Namespace": NAMESPACE,
                    "Dimensions": [["Service"]],
                    "Metrics": [
                        metric("Delivered", "Count"),
                        metric("Stale", "Count"),
                        metric("Failed", "Count"),
                        metric("Retried", "Count"),
                        metric("Requeued", "Count"),
                        metric("Rejected", "Count"),
                        metric("Shards", "Count"),
                        metric("Publications", "Count"),
                        metric("RefusedEmits", "Count"),
                        metric("Closed", "Count"),
                        metric("Subscribed", "Count"),
                        metric("Unsubscribed", "Count"),
                        metric("DurationMs", "Milliseconds"),
                    ],
                }],
            },
            "Service": "pusher",
            "Delivered": self.delivered,
            "Stale": self.stale,
            "Failed": self.failed,
            "Retried": self.retried,
            "Requeued": self.requeued,
            "Rejected": self.rejected,
            "Shards": self.shards,
            "Publications": self.publications,
            "RefusedEmits": self.refused_emits,
            "Closed": self.closed,
            "Subscribed": self.subscribed,
            "Unsubscribed": self.unsubscribed,
            "DurationMs": duration_ms,
        })
        .to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_emf_line_declares_every_metric_it_carries() {
        let metrics = Metrics {
            delivered: 5,
            stale: 1,
            failed: 2,
            retried: 3,
            requeued: 4,
            rejected: 6,
            shards: 7,
            publications: 8,
            refused_emits: 9,
            closed: 10,
            subscribed: 11,
            unsubscribed: 12,
        };
        let line: serde_json::Value =
            serde_json::from_str(&metrics.emf_line(42, 1_700_000_000_000)).unwrap();
        let declared = &line["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(declared["Namespace"], "sumu");
        for (name, value) in [
            ("Delivered", 5),
            ("Stale", 1),
            ("Failed", 2),
            ("Retried", 3),
            ("Requeued", 4),
            ("Rejected", 6),
            ("Shards", 7),
            ("Publications", 8),
            ("RefusedEmits", 9),
            ("Closed", 10),
            ("Subscribed", 11),
            ("Unsubscribed", 12),
            ("DurationMs", 42),
        ] {
            assert_eq!(line[name], value, "{name}");
            assert!(
                declared["Metrics"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|m| m["Name"] == name),
                "{name}"
            );
        }
        assert_eq!(line["Service"], "pusher");
        assert_eq!(line["_aws"]["Timestamp"], 1_700_000_000_000_u64);
    }
}
