//! Background tasks started with the server and stopped with it: the event-source runners that
//! play Lambda's event source mappings locally (issue 5: the connections table's stream into the
//! presence handler; issue 6: the notifications queue/topic into the pusher).
//!
//! A runner is a function of [`RunnerContext`] returning a future; it must return soon after
//! `shutdown` turns `true`. `start` always runs [`default_runners`]; others come in through
//! `Extensions::runners` (as `sumu-local serve --demo` adds the demo back end's).

use aws_config::SdkConfig;
use futures::future::BoxFuture;
use tokio::sync::watch;

use crate::config::PusherSetup;
use crate::resources::Resources;
use crate::roles::{sdk_config_as, Role};

pub mod demo;
pub mod pusher;
pub mod sns;
pub mod sqs;

/// What a runner gets: the AWS endpoint's SDK configuration, the provisioned resources, the
/// management API's endpoint (for `aws-sdk-apigatewaymanagement`'s `endpoint_url`) and the
/// shutdown signal.
#[derive(Clone)]
pub struct RunnerContext {
    /// Signs as sumu-local itself; a runner that plays a component's event source takes
    /// [`RunnerContext::as_role`] first.
    pub aws: SdkConfig,
    pub resources: Resources,
    /// `http://127.0.0.1:PORT/{stage}`.
    pub management_url: String,
    pub shutdown: watch::Receiver<bool>,
    /// How the pusher runners run.
    pub pusher: PusherSetup,
    /// Which channels keep history (the pusher's `CHANNEL_NAMESPACES`).
    pub namespaces: sumu_wire::Namespaces,
}

impl RunnerContext {
    /// This context signing as `role`: an event source mapping polls with the role of the
    /// function it feeds.
    pub fn as_role(&self, role: Role) -> RunnerContext {
        RunnerContext {
            aws: sdk_config_as(&self.aws, role),
            ..self.clone()
        }
    }

    /// Resolves when the emulator shuts down.
    pub async fn stopped(&mut self) {
        while !*self.shutdown.borrow_and_update() {
            if self.shutdown.changed().await.is_err() {
                return;
            }
        }
    }
}

pub type Runner = Box<dyn FnOnce(RunnerContext) -> BoxFuture<'static, ()> + Send>;

/// The runners `start` always starts: the pusher's (idle when `PusherSetup::enabled` is off).
pub fn default_runners() -> Vec<Runner> {
    vec![pusher::queue_runner(), pusher::topic_runner()]
}
