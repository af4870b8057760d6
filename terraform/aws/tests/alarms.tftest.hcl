# Alarm delivery and the account-wide API Gateway setting, against a mocked AWS provider.
# Run from terraform/aws: `terraform test`.

mock_provider "aws" {
  source = "../../modules/sumu/tests"
}

variables {
  name           = "sumu-test"
  lambda_zip_dir = "tests/fixtures/lambda"
}

run "alarms_topic_uses_a_key_cloudwatch_may_use" {
  command = apply

  assert {
    condition     = aws_sns_topic.alarms.kms_master_key_id == aws_kms_key.alarms.arn && aws_sns_topic.alarms.kms_master_key_id != "alias/aws/sns"
    error_message = "The alarms topic is encrypted with the stack's customer managed key, never alias/aws/sns (CloudWatch cannot use it)."
  }
  assert {
    condition     = aws_kms_key.alarms.enable_key_rotation
    error_message = "The alarms key rotates."
  }
  assert {
    condition = anytrue([for s in jsondecode(aws_kms_key_policy.alarms.policy).Statement :
      s.Effect == "Allow" && try(s.Principal.Service, "") == "cloudwatch.amazonaws.com"
      && try(toset(s.Action), toset([])) == toset(["kms:Decrypt", "kms:GenerateDataKey*"])
    ])
    error_message = "The key policy lets CloudWatch decrypt and generate data keys (what publishing to an encrypted topic needs)."
  }
  assert {
    condition = anytrue([for s in jsondecode(aws_kms_key_policy.alarms.policy).Statement :
      s.Effect == "Allow" && try(s.Principal.AWS, "") == "arn:aws:iam::123456789012:root" && s.Action == "kms:*"
    ])
    error_message = "The account (from the topic ARN, no STS call) keeps administering the key."
  }
  assert {
    condition = anytrue([for s in jsondecode(aws_sns_topic_policy.alarms.policy).Statement :
      try(s.Principal.Service, "") == "cloudwatch.amazonaws.com" && s.Action == "sns:Publish" && s.Resource == aws_sns_topic.alarms.arn
    ])
    error_message = "The topic policy lets CloudWatch publish."
  }
}

run "api_gateway_account_setting_is_reset_on_destroy" {
  command = plan

  assert {
    condition     = aws_api_gateway_account.this[0].reset_on_delete == true
    error_message = "Destroying the stack must reset the region's API Gateway CloudWatch role, not leave it pointing at a deleted role."
  }
}
