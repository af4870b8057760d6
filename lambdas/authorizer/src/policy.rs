//! The IAM policy answered to API Gateway.

use aws_lambda_events::apigw::{
    ApiGatewayCustomAuthorizerPolicy, ApiGatewayCustomAuthorizerResponse,
};
use aws_lambda_events::iam::{IamPolicyEffect, IamPolicyStatement};
use serde_json::{Map, Value};

/// `arn:{partition}:execute-api:{region}:{account}:{apiId}/{stage}/*` from a method ARN such as
/// `arn:aws:execute-api:eu-west-1:123456789012:abcdef123/dev/$connect`: one policy for the whole
/// stage, so the answer stays valid for every route of the connection.
pub fn stage_resource(method_arn: &str) -> Option<String> {
    let mut fields = method_arn.splitn(6, ':');
    let (
        Some("arn"),
        Some(partition),
        Some("execute-api"),
        Some(region),
        Some(account),
        Some(path),
    ) = (
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
    )
    else {
        return None;
    };
    let mut segments = path.split('/');
    let (Some(api_id), Some(stage)) = (segments.next(), segments.next()) else {
        return None;
    };
    if [partition, region, account, api_id, stage]
        .iter()
        .any(|f| f.is_empty())
    {
        return None;
    }
    Some(format!(
        "arn:{partition}:execute-api:{region}:{account}:{api_id}/{stage}/*"
    ))
}

/// API Gateway's "Lambda authorizer result size" quota for WebSocket APIs: 8 KB, not raisable
/// (*Quotas for configuring and running a WebSocket API in API Gateway*). Measured as the JSON the
/// Lambda returns (`principalId`, `policyDocument` and `context` together), in bytes, with KB
/// read as 1,024 bytes like the 32 KB frame and 128 KB message quotas of the same table.
pub const MAX_RESULT_BYTES: usize = 8 * 1024;

/// The size of `response` as the Lambda runtime sends it to API Gateway (serde_json, compact).
pub fn result_bytes(response: &ApiGatewayCustomAuthorizerResponse) -> usize {
    serde_json::to_vec(response).map_or(usize::MAX, |bytes| bytes.len())
}

pub fn response(
    effect: IamPolicyEffect,
    principal_id: String,
    resource: String,
    context: Map<String, Value>,
) -> ApiGatewayCustomAuthorizerResponse {
    let mut statement = IamPolicyStatement::default();
    statement.action = vec!["execute-api:Invoke".to_string()];
    statement.effect = effect;
    statement.resource = vec![resource];
    let mut policy = ApiGatewayCustomAuthorizerPolicy::default();
    policy.version = Some("2012-10-17".to_string());
    policy.statement = vec![statement];
    let mut response = ApiGatewayCustomAuthorizerResponse::default();
    response.principal_id = Some(principal_id);
    response.policy_document = policy;
    response.context = Value::Object(context);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stage_resource_covers_the_whole_stage() {
        assert_eq!(
            stage_resource("arn:aws:execute-api:eu-west-1:123456789012:abcdef123/dev/$connect")
                .as_deref(),
            Some("arn:aws:execute-api:eu-west-1:123456789012:abcdef123/dev/*")
        );
        assert_eq!(
            stage_resource("arn:aws-cn:execute-api:cn-north-1:1:api/prod/GET/x").as_deref(),
            Some("arn:aws-cn:execute-api:cn-north-1:1:api/prod/*")
        );
        assert_eq!(
            stage_resource("arn:aws:lambda:eu-west-1:1:function:f"),
            None
        );
        assert_eq!(stage_resource("arn:aws:execute-api:eu-west-1:1:api"), None);
        assert_eq!(stage_resource(""), None);
    }
}
