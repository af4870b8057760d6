//! What the pusher suites share: sending notification requests through the queue or the
//! topic, waiting until the pusher has finished with everything sent, reading the dead-letter
//! queue, fake connection items, and the "received exactly this, then nothing else" check.

use aws_sdk_apigatewaymanagement::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_sqs::types::QueueAttributeName;
use serde_json::{json, Value};
use sumu_wire::table;

use crate::{eventually, next_text, now_secs, Client, Local, DEADLINE};

/// The two ways a back end hands the pusher a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    Queue,
    Topic,
}

/// A dead-lettered request: its body and `rejection_reason` attribute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    pub body: String,
    pub reason: Option<String>,
}

impl Local {
    /// Sends `request` (a JSON value or a raw body) to the notifications queue or topic.
    pub async fn notify(&self, via: Via, body: &str) {
        let resources = &self.endpoints.resources;
        match via {
            Via::Queue => {
                self.sqs
                    .send_message()
                    .queue_url(&resources.notifications_queue_url)
                    .message_body(body)
                    .send()
                    .await
                    .expect("send to the notifications queue");
            }
            Via::Topic => {
                self.sns
                    .publish()
                    .topic_arn(&resources.notifications_topic_arn)
                    .message(body)
                    .send()
                    .await
                    .expect("publish to the notifications topic");
            }
        }
    }

    /// The internal queue sumu-local subscribes to the notifications topic.
    async fn topic_tap_url(&self) -> Option<String> {
        let name = self
            .endpoints
            .resources
            .notifications_queue_url
            .rsplit('/')
            .next()?
            .to_string();
        self.sqs
            .get_queue_url()
            .queue_name(format!("{name}-pusher-sns"))
            .send()
            .await
            .ok()?
            .queue_url
    }

    /// Waits until the topic runner has subscribed (a publish before that would be lost, as
    /// on AWS before the subscription exists): its queue exists AND the topic lists a
    /// subscription to it (the runner creates the queue first, so the queue alone is not enough).
    pub async fn until_topic_subscribed(&self) {
        eventually("the pusher's topic subscription exists", || async {
            let tap = self.topic_tap_url().await?;
            let queue_name = tap.rsplit('/').next()?.to_string();
            let subscriptions = self
                .sns
                .list_subscriptions_by_topic()
                .topic_arn(&self.endpoints.resources.notifications_topic_arn)
                .send()
                .await
                .ok()?;
            subscriptions
                .subscriptions()
                .iter()
                .any(|subscription| {
                    subscription
                        .endpoint()
                        .is_some_and(|endpoint| endpoint.ends_with(&format!(":{queue_name}")))
                })
                .then_some(())
        })
        .await;
    }

    /// Messages still in `queue_url`: visible, in flight or delayed.
    async fn pending(&self, queue_url: &str) -> u64 {
        let attributes = self
            .sqs
            .get_queue_attributes()
            .queue_url(queue_url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesDelayed)
            .send()
            .await
            .expect("queue attributes")
            .attributes
            .unwrap_or_default();
        attributes
            .values()
            .filter_map(|count| count.parse::<u64>().ok())
            .sum()
    }

    /// Waits until the notifications queue and the topic's internal queue are empty: every
    /// request sent so far was handled to the end (its posts done, the message deleted).
    pub async fn until_pusher_idle(&self) {
        let tap = self.topic_tap_url().await;
        eventually("the pusher has handled every request", || async {
            let mut pending = self
                .pending(&self.endpoints.resources.notifications_queue_url)
                .await;
            if let Some(tap) = &tap {
                pending += self.pending(tap).await;
            }
            (pending == 0).then_some(())
        })
        .await;
    }

    /// Reads `count` messages from the notifications dead-letter queue.
    pub async fn dead_letters(&self, count: usize) -> Vec<DeadLetter> {
        let mut found = Vec::new();
        let deadline = tokio::time::Instant::now() + DEADLINE;
        while found.len() < count {
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {count} dead letters; got {found:?}"
            );
            let received = self
                .sqs
                .receive_message()
                .queue_url(&self.endpoints.resources.notifications_dlq_url)
                .message_attribute_names("All")
                .max_number_of_messages(10)
                .wait_time_seconds(1)
                .send()
                .await
                .expect("receive from the DLQ");
            for message in received.messages.unwrap_or_default() {
                let reason = message
                    .message_attributes
                    .as_ref()
                    .and_then(|attributes| {
                        attributes.get(sumu_wire::notification_attributes::REJECTION_REASON)
                    })
                    .and_then(|value| value.string_value.clone());
                found.push(DeadLetter {
                    body: message.body.unwrap_or_default(),
                    reason,
                });
            }
        }
        found
    }

    /// Puts a connection item for `user` with no socket behind it (the management API answers
    /// 410 for it) and the given `expires_at`; returns its connection id.
    pub async fn put_item(&self, user: &str, expires_at: i64) -> String {
        let connection_id = format!("{}=", testkit::unique_name("nosocket"));
        self.dynamodb
            .put_item()
            .table_name(&self.endpoints.resources.connections_table)
            .item(table::USER_ID, AttributeValue::S(user.to_string()))
            .item(
                table::CONNECTION_ID,
                AttributeValue::S(connection_id.clone()),
            )
            .item(
                table::CONNECTED_AT,
                AttributeValue::N(now_secs().to_string()),
            )
            .item(table::EXPIRES_AT, AttributeValue::N(expires_at.to_string()))
            .send()
            .await
            .expect("put a connection item");
        connection_id
    }

    /// Moves the `expires_at` of the user's single item into the past (its socket stays open).
    pub async fn expire_item_of(&self, user: &str) {
        let connection_id = self.connection_id_of(user).await;
        self.dynamodb
            .update_item()
            .table_name(&self.endpoints.resources.connections_table)
            .key(table::USER_ID, AttributeValue::S(user.to_string()))
            .key(table::CONNECTION_ID, AttributeValue::S(connection_id))
            .update_expression("SET #e = :e")
            .expression_attribute_names("#e", table::EXPIRES_AT)
            .expression_attribute_values(":e", AttributeValue::N((now_secs() - 60).to_string()))
            .send()
            .await
            .expect("expire the item");
    }

    /// Posts a marker straight to `connection_id` (after everything the pusher sent it).
    pub async fn post_marker(&self, connection_id: &str, marker: &Value) {
        self.management()
            .post_to_connection()
            .connection_id(connection_id)
            .data(Blob::new(marker.to_string()))
            .send()
            .await
            .expect("post the marker");
    }
}

/// A connected user under test.
pub struct Receiver {
    pub user: String,
    pub connection_id: String,
    pub client: Client,
}

impl Receiver {
    pub async fn connect(local: &Local, prefix: &str) -> Receiver {
        let user = testkit::unique_name(prefix);
        let client = local.connect(&user).await;
        let connection_id = local.connection_id_of(&user).await;
        Receiver {
            user,
            connection_id,
            client,
        }
    }

    /// Asserts the client received exactly `expected` (in any order) and nothing else: waits for
    /// the pusher to go idle, posts a marker and requires it to be the next frame after them.
    pub async fn received_exactly(&mut self, local: &Local, expected: &[Value]) {
        let mut got = Vec::new();
        for _ in expected {
            got.push(crate::message_data(&next_text(&mut self.client).await));
        }
        local.until_pusher_idle().await;
        let marker = json!({"marker": testkit::unique_name("marker")});
        local.post_marker(&self.connection_id, &marker).await;
        let next = next_text(&mut self.client).await;
        assert_eq!(
            next, marker,
            "{} received {next} after {got:?}, expected only {expected:?}",
            self.user
        );
        let mut got_sorted: Vec<String> = got.iter().map(Value::to_string).collect();
        let mut expected_sorted: Vec<String> = expected.iter().map(Value::to_string).collect();
        got_sorted.sort();
        expected_sorted.sort();
        assert_eq!(got_sorted, expected_sorted, "what {} received", self.user);
    }
}
