//! The pusher's seam to the management API: [`Poster`], which the fan-out posts (and a
//! `disconnect` closes) through and the tests fake. The real one is management-client's [`ManagementClient`]
//! (lambdas/management-client/README.md), which knows nothing of the pusher.

use std::future::Future;

/// What one close achieved, as the management client classifies it.
pub use management_client::DeleteOutcome;
use management_client::ManagementClient;
/// What one post achieved, as the management client classifies it.
pub use management_client::PostOutcome;

/// The narrow seam between the fan-out logic and the management API.
pub trait Poster: Sync {
    fn post(&self, connection_id: &str, data: &[u8]) -> impl Future<Output = PostOutcome> + Send;
    /// Closes the connection (the management API's `DELETE @connections/{id}`).
    fn close(&self, connection_id: &str) -> impl Future<Output = DeleteOutcome> + Send;
}

impl Poster for ManagementClient {
    async fn post(&self, connection_id: &str, data: &[u8]) -> PostOutcome {
        ManagementClient::post(self, connection_id, data).await
    }

    async fn close(&self, connection_id: &str) -> DeleteOutcome {
        ManagementClient::delete(self, connection_id).await
    }
}
