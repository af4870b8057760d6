//! The demo back end (`lambdas/demo-backend`) run in-process, fed by the *messages* queue as an
//! SQS event source mapping would feed the Lambda. The queue receives both routes' messages
//! (`send` directly, `publish` through the topic's raw subscription) and the presence events, so
//! the back end reads only the queue: reading the topic too would answer every `publish` twice.
//!
//! Off unless asked for (`--demo`): it consumes the messages queue, which a developer's own
//! back end may want to read instead. `scripts/dev` turns it on.

use std::convert::Infallible;

use aws_lambda_events::event::sqs::SqsEvent;
use futures::FutureExt;

use super::sqs::{self, SqsSource};
use super::{Runner, RunnerContext};
use crate::roles::Role;

/// The messages queue → the demo back end.
pub fn demo_runner() -> Runner {
    Box::new(|context: RunnerContext| {
        let context = context.as_role(Role::DemoBackend);
        async move {
            let backend = demo_backend::AwsDemoBackend::from_sdk_config(
                &context.aws,
                demo_backend::Config {
                    notifications_queue_url: context.resources.notifications_queue_url.clone(),
                    connections_table: context.resources.connections_table.clone(),
                },
            );
            let source = SqsSource::new(context.resources.messages_queue_url.clone());
            let backend = &backend;
            sqs::run(context, source, move |event: SqsEvent| async move {
                Ok::<_, Infallible>(backend.handle_sqs(event).await)
            })
            .await;
        }
        .boxed()
    })
}
