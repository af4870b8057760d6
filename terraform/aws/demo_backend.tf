# The demo back end (lambdas/demo-backend, docs/demo.md): answers clients that speak the demo's
# message protocol — presence broadcast to everyone but its subject, chat turned into notification
# requests by push mode, "who is online" answered to the asking connection. It reads client
# `send` messages (and presence with presence_destination = queue) from the messages queue, and
# client `publish` messages (and presence with presence_destination = topic) from the messages
# topic; no message goes to both, so none is answered twice. Same conventions as the module's
# Lambdas (modules/sumu/lambdas.tf, iam.tf): custom runtime on Graviton, JSON logs to its own log
# group, one least-privilege statement per need.

locals {
  demo_backend_name = "${var.name}-demo-backend"
  demo_backend_zip  = "${local.lambda_zip_dir}/demo-backend/bootstrap.zip"
  # Lambda refuses an SQS event source whose visibility timeout is shorter than the function's
  # timeout; the module's messages queue keeps SQS's default of 30 s.
  demo_backend_timeout = 20

  demo_backend_policy = {
    Version = "2012-10-17"
    Statement = [
      {
        Sid      = "WriteOwnLogs"
        Effect   = "Allow"
        Action   = ["logs:CreateLogStream", "logs:PutLogEvents"]
        Resource = [for group in aws_cloudwatch_log_group.demo_backend : "${group.arn}:*"]
      },
      {
        Sid      = "XRayTraces"
        Effect   = "Allow"
        Action   = ["xray:PutTraceSegments", "xray:PutTelemetryRecords"]
        Resource = ["*"]
      },
      {
        Sid      = "ConsumeMessagesQueue"
        Effect   = "Allow"
        Action   = ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"]
        Resource = [module.sumu.messages_queue_arn]
      },
      {
        Sid      = "SendNotificationRequests"
        Effect   = "Allow"
        Action   = ["sqs:SendMessage"]
        Resource = [module.sumu.notifications_queue_arn]
      },
      {
        # "Who is online" is a Scan of the connections table (docs/demo.md).
        Sid      = "ListOnlineUsers"
        Effect   = "Allow"
        Action   = ["dynamodb:Scan"]
        Resource = [module.sumu.table_arn]
      },
      {
        # Topic deliveries (asynchronous invocations) that still fail after Lambda's retries.
        Sid      = "DeadLetterFailedTopicMessages"
        Effect   = "Allow"
        Action   = ["sqs:SendMessage"]
        Resource = [module.sumu.messages_dlq_arn]
      },
    ]
  }
}

resource "aws_iam_role" "demo_backend" {
  count = var.create_demo_backend ? 1 : 0

  name        = local.demo_backend_name
  description = "The demo back end Lambda of sumu ${var.name}."
  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Action    = "sts:AssumeRole"
      Principal = { Service = "lambda.amazonaws.com" }
    }]
  })
}

resource "aws_iam_role_policy" "demo_backend" {
  count = var.create_demo_backend ? 1 : 0

  name   = "demo-backend-least-privilege"
  role   = aws_iam_role.demo_backend[0].id
  policy = jsonencode(local.demo_backend_policy)
}

resource "aws_cloudwatch_log_group" "demo_backend" {
  count = var.create_demo_backend ? 1 : 0

  #checkov:skip=CKV_AWS_338:A demo's logs are kept 30 days like the module's (log_retention_days default); nothing in them needs a year.
  #checkov:skip=CKV_AWS_158:The stack uses no customer managed key (the module's kms_key_arn is not set here); CloudWatch Logs encrypts at rest by default.

  name              = "/aws/lambda/${local.demo_backend_name}"
  retention_in_days = 30
}

resource "aws_lambda_function" "demo_backend" {
  count = var.create_demo_backend ? 1 : 0

  #checkov:skip=CKV_AWS_117:The function calls only public AWS endpoints (SQS, DynamoDB); a VPC would add NAT cost and cold-start latency and protect nothing.
  #checkov:skip=CKV_AWS_272:Code signing needs an AWS Signer profile the user must own; the zip is built reproducibly from this repository by scripts/build-lambdas.
  #checkov:skip=CKV_AWS_115:Reserved concurrency is not set: on new accounts (unreserved concurrency 10) any reservation fails the apply. The queue's event source bounds it with maximum_concurrency.
  #checkov:skip=CKV_AWS_173:The environment holds no secrets (a queue URL and a table name); Lambda encrypts it at rest with an AWS managed key.
  function_name = local.demo_backend_name
  description   = "sumu demo back end (${var.name})"
  role          = aws_iam_role.demo_backend[0].arn

  filename         = local.demo_backend_zip
  source_code_hash = fileexists(local.demo_backend_zip) ? filebase64sha256(local.demo_backend_zip) : null
  handler          = "bootstrap"
  runtime          = "provided.al2023"
  architectures    = ["arm64"]
  memory_size      = 256
  timeout          = local.demo_backend_timeout

  environment {
    variables = {
      NOTIFICATIONS_QUEUE_URL = module.sumu.notifications_queue_url
      CONNECTIONS_TABLE       = module.sumu.table_name
    }
  }

  logging_config {
    log_format            = "JSON"
    log_group             = aws_cloudwatch_log_group.demo_backend[0].name
    application_log_level = "INFO"
    system_log_level      = "INFO"
  }

  tracing_config {
    mode = "Active"
  }

  # Invoked asynchronously by the messages topic: what still fails after Lambda's retries goes
  # to the messages dead-letter queue, which the module's alarms watch.
  dead_letter_config {
    target_arn = module.sumu.messages_dlq_arn
  }

  depends_on = [aws_cloudwatch_log_group.demo_backend, aws_iam_role_policy.demo_backend]

  lifecycle {
    precondition {
      condition     = fileexists(local.demo_backend_zip)
      error_message = "No Lambda package at ${local.demo_backend_zip}: run scripts/build-lambdas first (or set create_demo_backend = false)."
    }
  }
}

# Client `send` messages (and presence with presence_destination = queue). A failed notification
# request or Scan reports only its message as failed; SQS redelivers it, then moves it to the
# messages dead-letter queue after the module's queue_max_receive_count.
resource "aws_lambda_event_source_mapping" "demo_backend_queue" {
  count = var.create_demo_backend ? 1 : 0

  function_name           = aws_lambda_function.demo_backend[0].arn
  event_source_arn        = module.sumu.messages_queue_arn
  batch_size              = 10
  function_response_types = ["ReportBatchItemFailures"]

  scaling_config {
    maximum_concurrency = 5
  }

  depends_on = [aws_iam_role_policy.demo_backend]
}

# Client `publish` messages (and presence with presence_destination = topic).
resource "aws_sns_topic_subscription" "demo_backend" {
  count = var.create_demo_backend ? 1 : 0

  topic_arn = module.sumu.messages_topic_arn
  protocol  = "lambda"
  endpoint  = aws_lambda_function.demo_backend[0].arn

  depends_on = [aws_lambda_permission.demo_backend_topic]
}

resource "aws_lambda_permission" "demo_backend_topic" {
  count = var.create_demo_backend ? 1 : 0

  statement_id  = "AllowMessagesTopic"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.demo_backend[0].function_name
  principal     = "sns.amazonaws.com"
  source_arn    = module.sumu.messages_topic_arn
}
