# The demo back end's wiring, against a mocked AWS provider (no credentials, no network).
# Run from terraform/aws: `terraform test`.

mock_provider "aws" {
  source = "../../modules/sumu/tests"
}

variables {
  name           = "sumu-test"
  lambda_zip_dir = "tests/fixtures/lambda"
}

run "demo_backend_on_by_default" {
  command = apply

  assert {
    condition = (
      aws_lambda_function.demo_backend[0].function_name == "sumu-test-demo-backend" &&
      aws_lambda_function.demo_backend[0].runtime == "provided.al2023" &&
      aws_lambda_function.demo_backend[0].architectures == tolist(["arm64"]) &&
      aws_lambda_function.demo_backend[0].filename == "tests/fixtures/lambda/demo-backend/bootstrap.zip"
    )
    error_message = "The demo back end is the arm64 provided.al2023 package from lambda_zip_dir."
  }
  assert {
    condition = aws_lambda_function.demo_backend[0].environment[0].variables == tomap({
      NOTIFICATIONS_QUEUE_URL = module.sumu.notifications_queue_url
      CONNECTIONS_TABLE       = module.sumu.table_name
    })
    error_message = "The demo back end gets exactly the notifications queue URL and the table name."
  }
  assert {
    condition = (
      aws_lambda_function.demo_backend[0].logging_config[0].log_format == "JSON" &&
      aws_lambda_function.demo_backend[0].logging_config[0].log_group == "/aws/lambda/sumu-test-demo-backend" &&
      aws_cloudwatch_log_group.demo_backend[0].retention_in_days == 30
    )
    error_message = "JSON logs go to its own log group, which has a retention."
  }
  assert {
    condition     = aws_lambda_function.demo_backend[0].timeout <= 30
    error_message = "The timeout must not exceed the messages queue's 30 s visibility timeout (Lambda refuses the event source otherwise)."
  }
  assert {
    condition = (
      aws_lambda_event_source_mapping.demo_backend_queue[0].event_source_arn == module.sumu.messages_queue_arn &&
      aws_lambda_event_source_mapping.demo_backend_queue[0].function_response_types == toset(["ReportBatchItemFailures"]) &&
      aws_lambda_event_source_mapping.demo_backend_queue[0].scaling_config[0].maximum_concurrency == 5
    )
    error_message = "The messages queue feeds the demo back end with partial batch failures and bounded concurrency."
  }
  assert {
    condition = (
      aws_sns_topic_subscription.demo_backend[0].topic_arn == module.sumu.messages_topic_arn &&
      aws_sns_topic_subscription.demo_backend[0].protocol == "lambda" &&
      aws_lambda_permission.demo_backend_topic[0].source_arn == module.sumu.messages_topic_arn &&
      aws_lambda_permission.demo_backend_topic[0].principal == "sns.amazonaws.com"
    )
    error_message = "The messages topic invokes the demo back end, and only that topic may."
  }
}

run "demo_backend_least_privilege" {
  command = apply

  assert {
    condition = {
      for s in jsondecode(aws_iam_role_policy.demo_backend[0].policy).Statement : s.Sid => [s.Action, s.Resource]
      } == {
      WriteOwnLogs                  = [["logs:CreateLogStream", "logs:PutLogEvents"], ["${aws_cloudwatch_log_group.demo_backend[0].arn}:*"]]
      XRayTraces                    = [["xray:PutTraceSegments", "xray:PutTelemetryRecords"], ["*"]]
      ConsumeMessagesQueue          = [["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"], [module.sumu.messages_queue_arn]]
      SendNotificationRequests      = [["sqs:SendMessage"], [module.sumu.notifications_queue_arn]]
      ListOnlineUsers               = [["dynamodb:Scan"], [module.sumu.table_arn]]
      DeadLetterFailedTopicMessages = [["sqs:SendMessage"], [module.sumu.messages_dlq_arn]]
    }
    error_message = "One statement per need, each on its own ARN: nothing more."
  }
  assert {
    condition     = alltrue([for s in jsondecode(aws_iam_role_policy.demo_backend[0].policy).Statement : s.Effect == "Allow"])
    error_message = "Every statement allows."
  }
}

run "demo_backend_off" {
  command = apply

  variables {
    create_demo_backend = false
  }

  assert {
    condition = (
      length(aws_lambda_function.demo_backend) == 0 &&
      length(aws_iam_role.demo_backend) == 0 &&
      length(aws_cloudwatch_log_group.demo_backend) == 0 &&
      length(aws_lambda_event_source_mapping.demo_backend_queue) == 0 &&
      length(aws_sns_topic_subscription.demo_backend) == 0 &&
      length(aws_lambda_permission.demo_backend_topic) == 0 &&
      output.demo_backend_function_name == null
    )
    error_message = "create_demo_backend = false leaves nothing of the demo back end, so nothing reads the messages queue."
  }
}
