//! What the client's suites share: the servers they post to, and the SDK configuration the
//! client takes its credentials and region from.
#![allow(dead_code)]

pub mod management_api;
pub mod raw_http;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;

/// Fixed test credentials and a region: all the client reads from an SDK configuration. No
/// AWS endpoint is called, so no moto server is needed.
pub async fn sdk_config() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(testkit::REGION))
        .credentials_provider(Credentials::new("test", "test", None, None, "sumu-tests"))
        .load()
        .await
}
