//! The pusher Lambda (`lambdas/pusher`) run in-process, fed as on AWS: by the notifications
//! queue (the [`sqs`](super::sqs) event source, partial batch failures honoured) and by the
//! notifications topic (the [`sns`](super::sns) event source).
//!
//! Its configuration is the Lambda's, taken from the provisioned resources: the connections
//! table, the management endpoint (sumu-local's own, unless
//! [`PusherSetup::management_endpoint`](crate::config::PusherSetup::management_endpoint)
//! overrides it — tests put a fault-injecting proxy there), the notifications queue for
//! narrowed re-queues and the notifications dead-letter queue for rejected or exhausted
//! requests.

use std::convert::Infallible;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lambda_events::event::sns::SnsEvent;
use aws_lambda_events::event::sqs::SqsEvent;
use futures::future::BoxFuture;
use futures::FutureExt;
use lambda_runtime::{Context, LambdaEvent};
use pusher::SdkPusher;

use super::sns::{self, TopicTap};
use super::sqs::{self, SqsSource};
use super::{Runner, RunnerContext};
use crate::roles::{sdk_config_as, Role};

/// The pusher's Lambda configuration inside sumu-local.
pub fn pusher_config(context: &RunnerContext) -> pusher::Config {
    let setup = &context.pusher;
    pusher::Config {
        connections_table: context.resources.connections_table.clone(),
        subscriptions_table: context.resources.subscriptions_table.clone(),
        management_endpoint: setup
            .management_endpoint
            .clone()
            .unwrap_or_else(|| context.management_url.clone()),
        notifications_queue_url: Some(context.resources.notifications_queue_url.clone()),
        dead_letter_queue_url: Some(context.resources.notifications_dlq_url.clone()),
        history_table: Some(context.resources.history_table.clone()),
        namespaces: context.namespaces.clone(),
        limits: setup.limits.clone(),
    }
}

/// A Lambda context whose deadline is `timeout` from now.
fn invocation(timeout: Duration) -> Context {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let mut context = Context::default();
    context.request_id = uuid::Uuid::new_v4().to_string();
    context.deadline = now_ms + timeout.as_millis() as u64;
    context
}

/// The notifications queue → the pusher, `queue_pollers` invocations at a time.
pub fn queue_runner() -> Runner {
    Box::new(|context: RunnerContext| {
        let pollers = (0..context.pusher.queue_pollers.max(1))
            .map(|n| {
                let context = context.as_role(Role::Pusher);
                on_own_thread(&format!("pusher-queue-{n}"), move || async move {
                    if !context.pusher.enabled {
                        return;
                    }
                    let pusher = SdkPusher::from_sdk_config(&context.aws, &pusher_config(&context));
                    let timeout = context.pusher.timeout;
                    let mut source =
                        SqsSource::new(context.resources.notifications_queue_url.clone());
                    source.batch_size = context.pusher.queue_batch_size;
                    let pusher = &pusher;
                    sqs::run(context, source, move |event: SqsEvent| async move {
                        let response = pusher::handle_sqs(
                            LambdaEvent::new(event, invocation(timeout)),
                            pusher,
                        )
                        .await;
                        Ok::<_, Infallible>(response)
                    })
                    .await;
                })
            })
            .collect::<Vec<_>>();
        futures::future::join_all(pollers).map(|_| ()).boxed()
    })
}

/// The notifications topic → the pusher (through an internal queue
/// `{notifications queue}-pusher-sns`).
pub fn topic_runner() -> Runner {
    Box::new(|context: RunnerContext| {
        on_own_thread("pusher-topic", move || async move {
            if !context.pusher.enabled {
                return;
            }
            // The topic invokes the pusher directly on AWS; the internal queue standing in for
            // that is sumu-local's own, so only the pusher's calls sign as the pusher.
            let pusher_aws = sdk_config_as(&context.aws, Role::Pusher);
            let pusher = SdkPusher::from_sdk_config(&pusher_aws, &pusher_config(&context));
            let timeout = context.pusher.timeout;
            let queue_name = context
                .resources
                .notifications_queue_url
                .rsplit('/')
                .next()
                .unwrap_or("sumu-local-notifications")
                .to_string();
            let tap = TopicTap {
                topic_arn: context.resources.notifications_topic_arn.clone(),
                queue_name: format!("{queue_name}-pusher-sns"),
                dead_letter_queue_url: context.resources.notifications_dlq_url.clone(),
                retry_after: context.pusher.sns_retry_after,
            };
            let pusher = &pusher;
            sns::run(context, tap, move |event: SnsEvent| async move {
                pusher::handle_sns(LambdaEvent::new(event, invocation(timeout)), pusher).await
            })
            .await;
        })
    })
}

/// Runs `runner` on a thread of its own with a current-thread runtime, like a Lambda instance
/// handling one invocation at a time. (It also spares the pusher's futures a `Send` proof that
/// rustc cannot make for them in a boxed generic context: rust-lang/rust#110338.) The returned
/// future ends when the runner does.
fn on_own_thread<F>(
    name: &str,
    runner: impl FnOnce() -> F + Send + 'static,
) -> BoxFuture<'static, ()>
where
    F: std::future::Future<Output = ()> + 'static,
{
    let (done, finished) = tokio::sync::oneshot::channel::<()>();
    let spawned = std::thread::Builder::new()
        .name(name.to_string())
        .spawn(move || {
            match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime.block_on(runner()),
                Err(error) => tracing::error!(%error, "cannot start the pusher's runtime"),
            }
            let _ = done.send(());
        });
    if let Err(error) = spawned {
        tracing::error!(%error, "cannot start the pusher's thread");
    }
    async move {
        let _ = finished.await;
    }
    .boxed()
}
