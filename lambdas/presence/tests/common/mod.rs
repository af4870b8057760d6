//! Fakes for the two seams, and helpers to run the handler on fixture JSON.
#![allow(dead_code)] // each test binary uses a different part

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use aws_lambda_events::apigw::ApiGatewayProxyResponse;
use aws_lambda_events::streams::DynamoDbEventResponse;
use lambda_runtime::{Context, LambdaEvent};
use presence::{
    ConnectionCounter, Deps, EventSink, Invocation, PresenceError, Reply, SinkError, StoreError,
};
use sumu_wire::{OfflineReason, PresenceEvent, PresenceStatus};

/// Live connection counts per user; users in `failing` make the Query fail.
#[derive(Default)]
pub struct FakeCounter {
    pub live: HashMap<String, u32>,
    pub failing: HashSet<String>,
    pub asked: Mutex<Vec<String>>,
}

impl FakeCounter {
    pub fn with(live: &[(&str, u32)]) -> Self {
        FakeCounter {
            live: live
                .iter()
                .map(|(user, n)| (user.to_string(), *n))
                .collect(),
            ..Default::default()
        }
    }
    pub fn failing_for(mut self, user_id: &str) -> Self {
        self.failing.insert(user_id.to_owned());
        self
    }
    pub fn asked(&self) -> Vec<String> {
        let mut asked = self.asked.lock().unwrap().clone();
        asked.sort();
        asked
    }
}

impl ConnectionCounter for FakeCounter {
    async fn live_connections(&self, user_id: &str, _now: i64) -> Result<u32, StoreError> {
        self.asked.lock().unwrap().push(user_id.to_owned());
        if self.failing.contains(user_id) {
            return Err(StoreError {
                user_id: user_id.to_owned(),
                message: "ProvisionedThroughputExceededException".into(),
            });
        }
        Ok(self.live.get(user_id).copied().unwrap_or(0))
    }
}

/// Records delivered events; events of users in `failing` fail.
#[derive(Default)]
pub struct FakeSink {
    pub delivered: Mutex<Vec<PresenceEvent>>,
    pub failing: HashSet<String>,
}

impl FakeSink {
    pub fn failing_for(user_id: &str) -> Self {
        FakeSink {
            failing: HashSet::from([user_id.to_owned()]),
            ..Default::default()
        }
    }
    /// (user, connection, status, connections, reason) of each delivered event, in order.
    pub fn summary(&self) -> Vec<(String, String, PresenceStatus, u32, Option<OfflineReason>)> {
        self.delivered
            .lock()
            .unwrap()
            .iter()
            .map(|event| {
                let m = &event.message;
                (
                    m.user_id.clone(),
                    m.connection_id.clone(),
                    m.status,
                    m.connections,
                    m.reason,
                )
            })
            .collect()
    }
}

impl EventSink for FakeSink {
    async fn deliver(&self, event: &PresenceEvent) -> Result<(), SinkError> {
        if self.failing.contains(&event.message.user_id) {
            return Err(SinkError {
                user_id: event.message.user_id.clone(),
                message: "InternalError".into(),
            });
        }
        self.delivered.lock().unwrap().push(event.clone());
        Ok(())
    }
}

pub fn deps(counter: FakeCounter, sink: FakeSink) -> Deps<FakeCounter, FakeSink> {
    Deps {
        counter,
        sink,
        query_concurrency: 4,
    }
}

/// Runs the handler on an invocation payload given as JSON, the way the runtime does.
pub async fn invoke(
    json: &str,
    deps: &Deps<FakeCounter, FakeSink>,
) -> Result<Reply, PresenceError> {
    let invocation: Invocation =
        serde_json::from_str(json).expect("the payload is JSON the runtime accepts");
    presence::handle(LambdaEvent::new(invocation, Context::default()), deps).await
}

pub async fn invoke_stream(
    json: &str,
    deps: &Deps<FakeCounter, FakeSink>,
) -> DynamoDbEventResponse {
    match invoke(json, deps).await {
        Ok(Reply::Stream(response)) => response,
        other => panic!("expected a stream response, got {other:?}"),
    }
}

pub async fn invoke_route(
    json: &str,
    deps: &Deps<FakeCounter, FakeSink>,
) -> ApiGatewayProxyResponse {
    match invoke(json, deps).await {
        Ok(Reply::Route(response)) => *response,
        other => panic!("expected a proxy response, got {other:?}"),
    }
}

/// The sequence numbers reported as failed.
pub fn failures(response: &DynamoDbEventResponse) -> Vec<String> {
    response
        .batch_item_failures
        .iter()
        .map(|failure| failure.item_identifier.clone().unwrap_or_default())
        .collect()
}

/// The sequence number of the record at `index` of a fixture.
pub fn sequence_number(fixture: &str, index: usize) -> String {
    let value: serde_json::Value = serde_json::from_str(fixture).unwrap();
    value["Records"][index]["dynamodb"]["SequenceNumber"]
        .as_str()
        .unwrap()
        .to_owned()
}
