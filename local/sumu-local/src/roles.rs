//! The IAM role each part of the stack runs as on AWS, and the local credentials that name it.
//!
//! moto accepts any credentials and enforces no IAM, so sumu-local cannot prove that the roles of
//! modules/sumu allow what the components do. What it can do is say who made each call: every
//! component signs its AWS calls with an access key id naming its role, as the role's temporary
//! credentials would on AWS. A recording of the calls (tests/iam, run by `scripts/test`) is then
//! checked against the policies Terraform applied (docs/least-privilege.md).
//!
//! An event source mapping polls with the role of the function it feeds (Lambda reads a queue or
//! a stream with the function's execution role), so the runners that play those mappings sign as
//! that function. What only exists because this is an emulator — creating the resources,
//! the internal queue that stands in for SNS invoking the pusher — signs as [`Role::Emulator`],
//! which the check ignores.

use aws_config::SdkConfig;
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_credential_types::Credentials;

/// Who calls AWS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// API Gateway's integration role: the templates' DynamoDB, SNS and SQS calls.
    ApiGateway,
    /// The presence Lambda's role: its routes and the table's stream.
    Presence,
    /// The pusher Lambda's role: the notifications queue and topic, the tables, `@connections`.
    Pusher,
    /// The demo back end (a back end of the user's, not part of the module).
    DemoBackend,
    /// sumu-local itself: provisioning and the plumbing that stands in for AWS services.
    Emulator,
}

impl Role {
    /// The access key id this role's calls are signed with (moto accepts any).
    pub const fn access_key_id(self) -> &'static str {
        match self {
            Role::ApiGateway => "sumu-role-api-gateway",
            Role::Presence => "sumu-role-presence",
            Role::Pusher => "sumu-role-pusher",
            Role::DemoBackend => "sumu-role-demo-backend",
            Role::Emulator => "sumu-role-emulator",
        }
    }

    pub fn credentials(self) -> Credentials {
        Credentials::new(self.access_key_id(), "test", None, None, "sumu-local")
    }
}

/// `aws` with `role`'s credentials (same endpoint, region and settings).
pub fn sdk_config_as(aws: &SdkConfig, role: Role) -> SdkConfig {
    aws.to_builder()
        .credentials_provider(SharedCredentialsProvider::new(role.credentials()))
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_credential_types::provider::ProvideCredentials;

    #[tokio::test]
    async fn a_config_as_a_role_signs_with_that_role_and_keeps_the_endpoint() {
        let base = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("eu-west-1"))
            .endpoint_url("http://127.0.0.1:9")
            .credentials_provider(Role::Emulator.credentials())
            .load()
            .await;
        let pusher = sdk_config_as(&base, Role::Pusher);
        let credentials = pusher
            .credentials_provider()
            .expect("credentials")
            .provide_credentials()
            .await
            .expect("credentials resolve");
        assert_eq!(credentials.access_key_id(), "sumu-role-pusher");
        assert_eq!(pusher.endpoint_url(), Some("http://127.0.0.1:9"));
        assert_eq!(pusher.region().map(|r| r.as_ref()), Some("eu-west-1"));
    }
}
