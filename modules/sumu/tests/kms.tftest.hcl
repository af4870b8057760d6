# With kms_key_arn each role may use the key for what it does with encrypted data, through the
# service that holds the data; without it no role mentions KMS. Mocked AWS provider.
# Run from modules/sumu: `terraform test`.

mock_provider "aws" {
  source = "./tests"
}

variables {
  name = "sumu-test"
  issuers = [{
    issuer    = "https://issuer.example.com/"
    jwks_uri  = "https://issuer.example.com/.well-known/jwks.json"
    audiences = ["app"]
  }]
  lambda_zips = {
    authorizer = "tests/fixtures/bootstrap.zip"
    presence   = "tests/fixtures/bootstrap.zip"
    pusher     = "tests/fixtures/bootstrap.zip"
  }
}

run "no_key_no_kms_permissions" {
  command = apply

  assert {
    condition = alltrue(flatten([for p in concat(values(aws_iam_role_policy.lambda), [aws_iam_role_policy.api_gateway]) : [
      for s in jsondecode(p.policy).Statement : alltrue([for a in s.Action : !startswith(a, "kms:")])
    ]]))
    error_message = "Without kms_key_arn (AWS managed encryption) no role is granted any KMS action."
  }
  assert {
    condition     = output.kms_key_policy_statements == []
    error_message = "Without kms_key_arn there is nothing to add to a key policy."
  }
}

run "each_role_uses_the_key_for_its_own_needs" {
  command = apply

  variables {
    kms_key_arn = "arn:aws:kms:eu-west-1:123456789012:key/11111111-2222-3333-4444-555555555555"
  }

  # Sid => Action, Condition (null: none) for every KMS statement of each role.
  assert {
    condition = { for s in jsondecode(aws_iam_role_policy.api_gateway.policy).Statement : s.Sid => [s.Action, s.Resource, try(s.Condition, null)] if anytrue([for a in s.Action : startswith(a, "kms:")]) } == {
      UseStackKeyThroughDynamoDB = [["kms:Decrypt", "kms:DescribeKey"], [var.kms_key_arn], { StringEquals = { "kms:ViaService" = "dynamodb.eu-west-1.amazonaws.com" } }]
      EncryptForEncryptedTopics  = [["kms:GenerateDataKey", "kms:Decrypt"], [var.kms_key_arn], { StringEquals = { "kms:ViaService" = "sns.eu-west-1.amazonaws.com" } }]
      EncryptForEncryptedQueues  = [["kms:GenerateDataKey", "kms:Decrypt"], [var.kms_key_arn], { StringEquals = { "kms:ViaService" = "sqs.eu-west-1.amazonaws.com" } }]
    }
    error_message = "API Gateway writes the connections table (DynamoDB), publishes (SNS) and sends (SQS): decrypt through DynamoDB, encrypt through SNS and SQS, nothing else."
  }
  assert {
    condition     = length(jsondecode(aws_iam_role_policy.lambda["authorizer"].policy).Statement) == 2
    error_message = "The authorizer touches no encrypted data: still only its logs and traces."
  }
  assert {
    condition = toset([for s in jsondecode(aws_iam_role_policy.lambda["presence"].policy).Statement : s.Sid if anytrue([for a in s.Action : startswith(a, "kms:")])]) == toset([
      "UseStackKeyThroughDynamoDB", "DecryptTableStream", "EncryptForEncryptedQueues", "EncryptForEncryptedTopics",
    ])
    error_message = "presence reads the tables and the stream, sends to its failure queue and publishes presence to the topic."
  }
  assert {
    condition     = one([for s in jsondecode(aws_iam_role_policy.lambda["presence"].policy).Statement : s if s.Sid == "DecryptTableStream"]) == { Sid = "DecryptTableStream", Effect = "Allow", Action = ["kms:Decrypt", "kms:DescribeKey"], Resource = [var.kms_key_arn] }
    error_message = "Reading the encrypted stream takes kms:Decrypt (and DescribeKey) on the stack key."
  }
  assert {
    condition = toset([for s in jsondecode(aws_iam_role_policy.lambda["pusher"].policy).Statement : s.Sid if anytrue([for a in s.Action : startswith(a, "kms:")])]) == toset([
      "UseStackKeyThroughDynamoDB", "DecryptReceivedMessages", "EncryptForEncryptedQueues",
    ])
    error_message = "The pusher reads the tables, receives from the notifications queue and re-queues/dead-letters; it publishes to no topic."
  }
  assert {
    condition     = one([for s in jsondecode(aws_iam_role_policy.lambda["pusher"].policy).Statement : s if s.Sid == "DecryptReceivedMessages"]).Action == ["kms:Decrypt"]
    error_message = "Consuming an encrypted queue takes kms:Decrypt only."
  }
  assert {
    condition = alltrue(flatten([for p in concat(values(aws_iam_role_policy.lambda), [aws_iam_role_policy.api_gateway]) : [
      for s in jsondecode(p.policy).Statement : s.Resource == [var.kms_key_arn] if anytrue([for a in s.Action : startswith(a, "kms:")])
    ]]))
    error_message = "KMS statements name the stack key and nothing else."
  }
}

run "presence_to_the_queue_does_not_publish" {
  command = apply

  variables {
    kms_key_arn          = "arn:aws:kms:eu-west-1:123456789012:key/11111111-2222-3333-4444-555555555555"
    presence_destination = "queue"
  }

  assert {
    condition     = !contains(jsondecode(aws_iam_role_policy.lambda["presence"].policy).Statement[*].Sid, "EncryptForEncryptedTopics")
    error_message = "With presence_destination = queue presence needs no SNS encryption."
  }
}

run "key_policy_statements_for_service_principals" {
  command = plan

  variables {
    kms_key_arn = "arn:aws:kms:eu-west-1:123456789012:key/11111111-2222-3333-4444-555555555555"
  }

  assert {
    condition = one([for s in output.kms_key_policy_statements : s if s.Sid == "CloudWatchLogsEncryptsTheStackLogGroups"]) == {
      Sid       = "CloudWatchLogsEncryptsTheStackLogGroups"
      Effect    = "Allow"
      Principal = { Service = "logs.eu-west-1.amazonaws.com" }
      Action    = ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"]
      Resource  = "*"
      Condition = { ArnLike = { "kms:EncryptionContext:aws:logs:arn" = [
        "arn:aws:logs:eu-west-1:123456789012:log-group:/aws/lambda/sumu-test-*",
        "arn:aws:logs:eu-west-1:123456789012:log-group:/aws/apigateway/sumu-test/*",
        "arn:aws:logs:eu-west-1:123456789012:log-group:API-Gateway-Execution-Logs_*/live",
      ] } }
    }
    error_message = "CloudWatch Logs must be allowed to use the key for the stack's log groups only, known at plan."
  }
  assert {
    condition = one([for s in output.kms_key_policy_statements : s if s.Sid == "SnsDeadLettersIntoEncryptedQueues"]) == {
      Sid = "SnsDeadLettersIntoEncryptedQueues", Effect = "Allow", Principal = { Service = "sns.amazonaws.com" }, Action = ["kms:GenerateDataKey", "kms:Decrypt"], Resource = "*"
    }
    error_message = "SNS must be allowed to encrypt what it dead-letters into the encrypted notifications DLQ."
  }
}
