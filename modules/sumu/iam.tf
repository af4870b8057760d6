# Least privilege: one role per function and one for API Gateway's service integrations, one
# statement per need, every resource named by its ARN. The only "*" resources are X-Ray's, which
# has no resource-level permissions. Policies are plain jsonencode() so that `terraform test` can
# check their content (a mocked aws_iam_policy_document would return nothing real).

locals {
  table_arn               = aws_dynamodb_table.this.arn
  subscriptions_table_arn = aws_dynamodb_table.subscriptions.arn

  kms_statements = var.kms_key_arn == null ? [] : [{
    Sid      = "UseStackKey"
    Effect   = "Allow"
    Action   = ["kms:GenerateDataKey", "kms:Decrypt"]
    Resource = [var.kms_key_arn]
  }]

  api_gateway_policy = {
    Version = "2012-10-17"
    Statement = concat([
      {
        Sid      = "ConnectionsTable"
        Effect   = "Allow"
        Action   = ["dynamodb:PutItem", "dynamodb:DeleteItem", "dynamodb:UpdateItem"]
        Resource = [local.table_arn]
      },
      {
        Sid      = "PublishToMessagesTopic"
        Effect   = "Allow"
        Action   = ["sns:Publish"]
        Resource = [local.messages_topic_arn]
      },
      {
        Sid      = "SendToMessagesQueue"
        Effect   = "Allow"
        Action   = ["sqs:SendMessage"]
        Resource = [local.messages_queue_arn]
      },
      # send/publish with a `message` that is not a JSON object: the template sends the sender's
      # invalid_message frame to the pusher instead of the message to the back ends.
      {
        Sid      = "RefuseThroughNotificationsTopic"
        Effect   = "Allow"
        Action   = ["sns:Publish"]
        Resource = [local.notifications_topic_arn]
      },
      {
        Sid      = "RefuseThroughNotificationsQueue"
        Effect   = "Allow"
        Action   = ["sqs:SendMessage"]
        Resource = [local.notifications_queue_arn]
      },
    ], local.kms_statements)
  }

  lambda_common_statements = {
    for fn in local.functions : fn => concat([
      {
        Sid      = "WriteOwnLogs"
        Effect   = "Allow"
        Action   = ["logs:CreateLogStream", "logs:PutLogEvents"]
        Resource = ["${aws_cloudwatch_log_group.lambda[fn].arn}:*"]
      },
      {
        Sid      = "XRayTraces"
        Effect   = "Allow"
        Action   = ["xray:PutTraceSegments", "xray:PutTelemetryRecords"]
        Resource = ["*"]
      },
    ], local.kms_statements)
  }

  lambda_statements = {
    authorizer = []

    presence = concat([
      {
        Sid      = "ReadTableStream"
        Effect   = "Allow"
        Action   = ["dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator", "dynamodb:ListStreams"]
        Resource = [aws_dynamodb_table.this.stream_arn]
      },
      {
        Sid      = "CountLiveConnections"
        Effect   = "Allow"
        Action   = ["dynamodb:Query"]
        Resource = [local.table_arn]
      },
      {
        Sid      = "RecordFailedStreamBatches"
        Effect   = "Allow"
        Action   = ["sqs:SendMessage"]
        Resource = [aws_sqs_queue.presence_failures.arn]
      },
      {
        # subscribe/unsubscribe: the connection's cap counter, in the same transaction as the
        # subscription item (IAM checks a transaction's items as these actions), and the read
        # that tells a full connection from a gone one.
        Sid      = "CountSubscriptionsOnTheConnection"
        Effect   = "Allow"
        Action   = ["dynamodb:UpdateItem", "dynamodb:GetItem"]
        Resource = [local.table_arn]
      },
      {
        Sid      = "WriteSubscriptions"
        Effect   = "Allow"
        Action   = ["dynamodb:PutItem", "dynamodb:DeleteItem", "dynamodb:BatchWriteItem"]
        Resource = [local.subscriptions_table_arn]
      },
      {
        # The cleanup when a connection ends: its subscriptions, by connection id.
        Sid      = "FindSubscriptionsOfAConnection"
        Effect   = "Allow"
        Action   = ["dynamodb:Query"]
        Resource = ["${local.subscriptions_table_arn}/index/connection_id-index"]
      },
      ], var.presence_destination == "topic" ? [{
        Sid      = "PublishPresenceToTopic"
        Effect   = "Allow"
        Action   = ["sns:Publish"]
        Resource = [local.messages_topic_arn]
        }] : [], var.presence_destination == "queue" ? [{
        Sid      = "SendPresenceToQueue"
        Effect   = "Allow"
        Action   = ["sqs:SendMessage"]
        Resource = [local.messages_queue_arn]
    }] : [])

    pusher = [
      {
        Sid      = "FindTargetConnections"
        Effect   = "Allow"
        Action   = ["dynamodb:Query", "dynamodb:Scan"]
        Resource = [local.table_arn, "${local.table_arn}/index/connection_id-index"]
      },
      {
        # The table's approximate item count decides how many shards a broadcast is split into.
        Sid      = "EstimateBroadcastSize"
        Effect   = "Allow"
        Action   = ["dynamodb:DescribeTable"]
        Resource = [local.table_arn]
      },
      {
        Sid      = "PruneStaleConnections"
        Effect   = "Allow"
        Action   = ["dynamodb:DeleteItem", "dynamodb:BatchWriteItem"]
        Resource = [local.table_arn]
      },
      {
        # A publication reads one partition per matching pattern; never a Scan.
        Sid      = "FindChannelSubscribers"
        Effect   = "Allow"
        Action   = ["dynamodb:Query"]
        Resource = [local.subscriptions_table_arn]
      },
      {
        Sid      = "PruneStaleSubscriptions"
        Effect   = "Allow"
        Action   = ["dynamodb:DeleteItem", "dynamodb:BatchWriteItem"]
        Resource = [local.subscriptions_table_arn]
      },
      {
        # Send (POST), inspect (GET) and close (DELETE) connections of this stage only.
        Sid    = "ManageConnections"
        Effect = "Allow"
        Action = ["execute-api:ManageConnections"]
        Resource = [for method in ["POST", "GET", "DELETE"] :
          "${aws_apigatewayv2_api.this.execution_arn}/${var.stage}/${method}/@connections/*"
        ]
      },
      {
        Sid      = "ConsumeNotificationsQueue"
        Effect   = "Allow"
        Action   = ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility", "sqs:GetQueueAttributes"]
        Resource = [local.notifications_queue_arn]
      },
      {
        # A request that still failed for some connections is re-queued narrowed to those.
        Sid      = "RequeueNarrowedRequests"
        Effect   = "Allow"
        Action   = ["sqs:SendMessage"]
        Resource = [local.notifications_queue_arn]
      },
      {
        Sid      = "DeadLetterRejectedRequests"
        Effect   = "Allow"
        Action   = ["sqs:SendMessage"]
        Resource = [aws_sqs_queue.notifications_dlq.arn]
      },
    ]
  }

  lambda_policies = {
    for fn in local.functions : fn => {
      Version   = "2012-10-17"
      Statement = concat(local.lambda_common_statements[fn], local.lambda_statements[fn])
    }
  }

  assume_role_policies = {
    for service in ["lambda", "apigateway"] : service => jsonencode({
      Version = "2012-10-17"
      Statement = [{
        Effect    = "Allow"
        Action    = "sts:AssumeRole"
        Principal = { Service = "${service}.amazonaws.com" }
      }]
    })
  }
}

resource "aws_iam_role" "api_gateway" {
  name               = "${var.name}-apigw-integrations"
  description        = "API Gateway's direct integrations of sumu ${var.name} (DynamoDB, SNS, SQS)."
  assume_role_policy = local.assume_role_policies["apigateway"]
  tags               = local.tags
}

resource "aws_iam_role_policy" "api_gateway" {
  name   = "integrations"
  role   = aws_iam_role.api_gateway.id
  policy = jsonencode(local.api_gateway_policy)
}

resource "aws_iam_role" "lambda" {
  for_each = local.functions

  name               = "${var.name}-${each.key}"
  description        = "The ${each.key} Lambda of sumu ${var.name}."
  assume_role_policy = local.assume_role_policies["lambda"]
  tags               = local.tags
}

resource "aws_iam_role_policy" "lambda" {
  for_each = local.functions

  name   = "${each.key}-least-privilege"
  role   = aws_iam_role.lambda[each.key].id
  policy = jsonencode(local.lambda_policies[each.key])
}
