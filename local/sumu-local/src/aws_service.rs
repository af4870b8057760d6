//! Calls DynamoDB, SNS and SQS the way an API Gateway `AWS` integration does: it POSTs the
//! body a mapping template rendered, SigV4-signed, to an AWS-compatible endpoint (moto).
//!
//! DynamoDB speaks the JSON protocol (`X-Amz-Target: DynamoDB_20120810.<Action>`,
//! `application/x-amz-json-1.0`); SNS and SQS take the Query protocol
//! (`application/x-www-form-urlencoded`, the body carries `Action=`). moto chooses the service
//! from the credential scope of the signature, so every request is signed for its service.

use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;

use crate::roles::Role;

/// A client for the AWS-compatible endpoint the integrations call.
#[derive(Debug, Clone)]
pub struct AwsService {
    client: reqwest::Client,
    endpoint: String,
    region: String,
    credentials: Credentials,
}

/// The service's answer, passed on as-is (status and body) to integration-response selection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceResponse {
    pub status: u16,
    pub body: String,
}

#[derive(Debug, thiserror::Error)]
pub enum AwsServiceError {
    #[error("unsupported integration service `{0}` (expected dynamodb, sns or sqs)")]
    UnknownService(String),
    #[error("could not sign the {service} request: {message}")]
    Signing { service: String, message: String },
    #[error("{service} request to {endpoint} failed: {source}")]
    Http {
        service: String,
        endpoint: String,
        #[source]
        source: reqwest::Error,
    },
}

/// How one service is called: its signing name and the protocol headers.
struct Protocol {
    signing_name: &'static str,
    content_type: &'static str,
    /// `X-Amz-Target` prefix for JSON-protocol services.
    target_prefix: Option<&'static str>,
}

fn protocol_of(service: &str) -> Option<Protocol> {
    match service {
        "dynamodb" => Some(Protocol {
            signing_name: "dynamodb",
            content_type: "application/x-amz-json-1.0",
            target_prefix: Some("DynamoDB_20120810"),
        }),
        "sns" => Some(Protocol {
            signing_name: "sns",
            content_type: "application/x-www-form-urlencoded",
            target_prefix: None,
        }),
        "sqs" => Some(Protocol {
            signing_name: "sqs",
            content_type: "application/x-www-form-urlencoded",
            target_prefix: None,
        }),
        _ => None,
    }
}

impl AwsService {
    /// A client for `endpoint` (e.g. `http://127.0.0.1:5000`) in `region`, signing as API
    /// Gateway's integration role ([`Role::ApiGateway`]).
    pub fn new(endpoint: &str, region: &str) -> AwsService {
        AwsService {
            client: reqwest::Client::new(),
            endpoint: endpoint.trim_end_matches('/').to_owned(),
            region: region.to_owned(),
            credentials: Role::ApiGateway.credentials(),
        }
    }

    /// POSTs a rendered integration request body to `service` ("dynamodb" | "sns" | "sqs").
    /// `action` names the DynamoDB operation (`X-Amz-Target`); for SNS/SQS the action is part
    /// of the form-encoded body, as API Gateway sends it. Any HTTP status is a response (the
    /// caller selects the integration response by it); only transport failures are errors.
    pub async fn call(
        &self,
        service: &str,
        action: &str,
        body: String,
    ) -> Result<ServiceResponse, AwsServiceError> {
        let protocol =
            protocol_of(service).ok_or_else(|| AwsServiceError::UnknownService(service.into()))?;
        let url = format!("{}/", self.endpoint);
        let target = protocol
            .target_prefix
            .map(|prefix| format!("{prefix}.{action}"));
        let mut headers: Vec<(&str, String)> =
            vec![("content-type", protocol.content_type.to_owned())];
        if let Some(target) = &target {
            headers.push(("x-amz-target", target.clone()));
        }
        let signed = self.sign_headers(&protocol, &url, &headers, body.as_bytes())?;

        let mut request = self.client.post(&url).body(body);
        for (name, value) in headers.iter().chain(signed.iter()) {
            request = request.header(*name, value.as_str());
        }
        let http_error = |source| AwsServiceError::Http {
            service: service.to_owned(),
            endpoint: self.endpoint.clone(),
            source,
        };
        let response = request.send().await.map_err(http_error)?;
        let status = response.status().as_u16();
        let body = response.text().await.map_err(http_error)?;
        tracing::debug!(service, action, status, "integration call");
        Ok(ServiceResponse { status, body })
    }

    /// The SigV4 headers (`authorization`, `x-amz-date`, …) for a POST of `body` to `url`.
    fn sign_headers(
        &self,
        protocol: &Protocol,
        url: &str,
        headers: &[(&str, String)],
        body: &[u8],
    ) -> Result<Vec<(&'static str, String)>, AwsServiceError> {
        let signing_error = |message: String| AwsServiceError::Signing {
            service: protocol.signing_name.to_owned(),
            message,
        };
        let identity = self.credentials.clone().into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name(protocol.signing_name)
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|error| signing_error(error.to_string()))?
            .into();
        let request = SignableRequest::new(
            "POST",
            url,
            headers.iter().map(|(name, value)| (*name, value.as_str())),
            SignableBody::Bytes(body),
        )
        .map_err(|error| signing_error(error.to_string()))?;
        let (instructions, _signature) = sign(request, &params)
            .map_err(|error| signing_error(error.to_string()))?
            .into_parts();
        let (signed, _params) = instructions.into_parts();
        Ok(signed
            .into_iter()
            .map(|header| (header.name(), header.value().to_owned()))
            .collect())
    }
}
