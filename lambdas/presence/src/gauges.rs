//! The live gauges as CloudWatch metrics: API Gateway counts connects and messages but has
//! no gauge of how many connections are open, so the presence Lambda keeps one (and one of
//! subscriptions) in the members table and prints it after every stream batch that changed it
//! as one CloudWatch Embedded Metric Format line, namespace `sumu`, dimension
//! `Service` = `presence`, metrics `LiveConnections` and `Subscriptions`.
//!
//! The numbers are adjusted by ±1 for every INSERT and REMOVE the stream hands over (atomic
//! `ADD`s, so concurrent batches cannot lose a change) — TTL deletions included, since DynamoDB
//! streams them as REMOVEs. A connection past its `expires_at` that neither `$disconnect` nor
//! TTL has removed yet still counts until one of them does.

use std::time::{SystemTime, UNIX_EPOCH};

use tracing::{error, info};

use crate::members::{ChannelMembers, Gauges};

/// The CloudWatch namespace (shared with the pusher's metrics).
const NAMESPACE: &str = "sumu";

/// One EMF JSON object: CloudWatch turns it into metrics without any API call.
pub fn emf_line(gauges: &Gauges, timestamp_ms: u128) -> String {
    let metric = |name: &str| serde_json::json!({ "Name": name, "Unit": "Count" });
    serde_json::json!({
        "_aws": {
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [["Service"]],
                "Metrics": [metric("LiveConnections"), metric("Subscriptions")],
            }],
        },
        "Service": "presence",
        "LiveConnections": gauges.connections,
        "Subscriptions": gauges.subscriptions,
    })
    .to_string()
}

/// Applies a batch's changes to the gauges and prints them. A failure is logged, not
/// retried: failing the batch would deliver its events again to correct a metric.
pub async fn adjust<M: ChannelMembers>(members: &M, connections: i64, subscriptions: i64) {
    if connections == 0 && subscriptions == 0 {
        return;
    }
    match members.adjust_gauges(connections, subscriptions).await {
        Ok(gauges) => {
            info!(
                live_connections = gauges.connections,
                subscriptions = gauges.subscriptions,
                "live gauges"
            );
            let now_ms = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|elapsed| elapsed.as_millis())
                .unwrap_or(0);
            // Printed straight to stdout: CloudWatch extracts metrics only from a log event
            // that *is* the EMF object.
            println!("{}", emf_line(&gauges, now_ms));
        }
        Err(error) => {
            error!(%error, connections, subscriptions, "adjusting the live gauges failed; they are off by this batch")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_emf_line_names_both_gauges() {
        let line: serde_json::Value = serde_json::from_str(&emf_line(
            &Gauges {
                connections: 3,
                subscriptions: 7,
            },
            1,
        ))
        .unwrap();
        assert_eq!(line["LiveConnections"], 3);
        assert_eq!(line["Subscriptions"], 7);
        assert_eq!(line["Service"], "presence");
        assert_eq!(line["_aws"]["CloudWatchMetrics"][0]["Namespace"], "sumu");
        assert_eq!(
            line["_aws"]["CloudWatchMetrics"][0]["Metrics"][1]["Name"],
            "Subscriptions"
        );
    }
}
