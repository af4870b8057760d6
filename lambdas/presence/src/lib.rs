//! sumu's presence Lambda. One binary, three kinds of invocation:
//! - DynamoDB stream batches of the connections table → ONLINE/OFFLINE events on the
//!   *messages* topic or queue ([`stream`]);
//! - the `presence` WebSocket route (AWS_PROXY) → each asked user's status ([`query`]);
//! - the `subscribe` / `unsubscribe` routes (AWS_PROXY) → a subscription written or removed
//!   and its reply frame ([`channels`], storage in [`subscriptions`]);
//! - a direct invocation by a back end, `{"users":[…]}` → the same answer as JSON;
//! - DynamoDB stream batches of the subscriptions table → channel members, `join`/`leave`
//!   frames and lifecycle events ([`channel_stream`], storage in [`members`]), and the live
//!   gauges ([`gauges`]).
//!
//! Any other route key is refused with an `unknown_route` error frame ([`handler`]).
//!
//! Module layout (no import cycle: tests/testkit's module-graph test): [`handler`] tells the
//! invocations apart and calls [`stream`], [`query`] and [`channels`]; they use [`deps`], the
//! seams ([`store`], [`sink`], [`subscriptions`]) and [`config`]; lib.rs only re-exports.
//!
//! The handler is a plain `async fn` over narrow seams ([`ConnectionCounter`],
//! [`EventSink`], [`SubscriptionStore`]), so tests call it with fakes and sumu-local runs it in-process with the SDK
//! implementations built by [`SdkDeps::from_sdk_config`].

pub mod channel_presence;
pub mod channel_stream;
pub mod channels;
pub mod config;
pub mod deps;
pub mod gauges;
pub mod handler;
pub mod history;
pub mod history_route;
pub mod members;
pub mod query;
pub mod recovery;
pub mod sink;
pub mod store;
pub mod stream;
pub mod subscriptions;

pub use config::{Config, ConfigError, Destination};
pub use deps::{Deps, SdkDeps};
pub use handler::{handle, Invocation, Reply, Route, ERROR_UNKNOWN_ROUTE};
pub use history::ChannelHistory;
pub use members::{ChannelMembers, Gauges, MembersError, SetChange};
pub use query::{InvalidQuery, PresenceError};
pub use sink::{EventSink, Lifecycle, SdkEventSink, SinkError};
pub use store::{ConnectionCounter, DynamoConnectionStore, StoreError};
pub use stream::StreamBatch;
pub use subscriptions::{DynamoSubscriptionStore, SubscriptionError, SubscriptionStore};
