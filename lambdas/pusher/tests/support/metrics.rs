//! A [`MetricsSink`] that keeps what each invocation reported, so a test (or a benchmark) reads
//! the counters the Lambda would have logged.

use std::sync::Mutex;
use std::time::Duration;

use pusher::{Metrics, MetricsSink};

/// Every invocation's counters, in order.
#[derive(Debug, Default)]
pub struct RecordedMetrics(Mutex<Vec<Metrics>>);

impl RecordedMetrics {
    /// The counters the last invocation reported.
    pub fn last(&self) -> Metrics {
        self.0
            .lock()
            .unwrap()
            .last()
            .copied()
            .expect("no invocation reported its metrics")
    }
}

impl MetricsSink for RecordedMetrics {
    fn record(&self, metrics: &Metrics, _duration: Duration) {
        self.0.lock().unwrap().push(*metrics);
    }
}
