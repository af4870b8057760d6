# Topics and queues (DESIGN.md): *messages* carries client messages and presence events to the
# back ends; *notifications* carries notification requests from the back ends to the pusher.
# Every queue has somewhere for poison messages to go, and alarms.tf watches each of those places.

resource "aws_sns_topic" "messages" {
  count = var.create_messages_topic ? 1 : 0

  name              = "${var.name}-messages"
  kms_master_key_id = local.sns_kms_master_key_id
  tags              = local.tags
}

resource "aws_sns_topic" "notifications" {
  count = var.create_notifications_topic ? 1 : 0

  name              = "${var.name}-notifications"
  kms_master_key_id = local.sns_kms_master_key_id
  tags              = local.tags
}

resource "aws_sqs_queue" "messages" {
  count = var.create_messages_queue ? 1 : 0

  name                      = "${var.name}-messages"
  message_retention_seconds = var.limits.message_retention_seconds
  sqs_managed_sse_enabled   = var.kms_key_arn == null ? true : null
  kms_master_key_id         = var.kms_key_arn
  tags                      = local.tags

  lifecycle {
    # Managed by aws_sqs_queue_redrive_policy below; the two must not fight over the attribute.
    ignore_changes = [redrive_policy]
  }
}

resource "aws_sqs_queue" "messages_dlq" {
  count = var.create_messages_queue ? 1 : 0

  name                      = "${var.name}-messages-dlq"
  message_retention_seconds = 1209600
  sqs_managed_sse_enabled   = var.kms_key_arn == null ? true : null
  kms_master_key_id         = var.kms_key_arn
  tags                      = local.tags
}

resource "aws_sqs_queue_redrive_policy" "messages" {
  count = var.create_messages_queue ? 1 : 0

  queue_url = aws_sqs_queue.messages[0].id
  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.messages_dlq[0].arn
    maxReceiveCount     = var.limits.queue_max_receive_count
  })
}

resource "aws_sqs_queue" "notifications" {
  count = var.create_notifications_queue ? 1 : 0

  name                      = "${var.name}-notifications"
  message_retention_seconds = var.limits.message_retention_seconds
  # AWS's advice for a Lambda event source: at least six times the function's timeout.
  visibility_timeout_seconds = 6 * var.lambda_settings.pusher_timeout
  sqs_managed_sse_enabled    = var.kms_key_arn == null ? true : null
  kms_master_key_id          = var.kms_key_arn
  tags                       = local.tags

  lifecycle {
    ignore_changes = [redrive_policy]
  }
}

# The pusher's dead-letter queue: notification requests that cannot be parsed or delivered end here
# from the notifications queue (redrive), the notifications topic (subscription redrive) and the
# pusher's own asynchronous invocations — never silently dropped.
resource "aws_sqs_queue" "notifications_dlq" {
  name                      = "${var.name}-notifications-dlq"
  message_retention_seconds = 1209600
  sqs_managed_sse_enabled   = var.kms_key_arn == null ? true : null
  kms_master_key_id         = var.kms_key_arn
  tags                      = local.tags

  lifecycle {
    # Managed by aws_sqs_queue_policy.notifications_dlq.
    ignore_changes = [policy]
  }
}

resource "aws_sqs_queue_redrive_policy" "notifications" {
  count = var.create_notifications_queue ? 1 : 0

  queue_url = aws_sqs_queue.notifications[0].id
  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.notifications_dlq.arn
    maxReceiveCount     = var.limits.queue_max_receive_count
  })
}

# SNS moves a notification it cannot hand to the pusher into the DLQ; the queue must let it.
resource "aws_sqs_queue_policy" "notifications_dlq" {
  queue_url = aws_sqs_queue.notifications_dlq.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Sid       = "NotificationsTopicDeadLetters"
      Effect    = "Allow"
      Principal = { Service = "sns.amazonaws.com" }
      Action    = "sqs:SendMessage"
      Resource  = aws_sqs_queue.notifications_dlq.arn
      Condition = { ArnEquals = { "aws:SourceArn" = local.notifications_topic_arn } }
    }]
  })
}

# Stream batches the presence Lambda keeps failing (after bisecting and retries) are recorded here.
resource "aws_sqs_queue" "presence_failures" {
  name                      = "${var.name}-presence-failures"
  message_retention_seconds = 1209600
  sqs_managed_sse_enabled   = var.kms_key_arn == null ? true : null
  kms_master_key_id         = var.kms_key_arn
  tags                      = local.tags
}
