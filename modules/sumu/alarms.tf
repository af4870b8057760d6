# Something is wrong when a dead-letter queue holds a message or a function fails.

locals {
  dead_letter_queues = merge(
    {
      notifications_dlq = aws_sqs_queue.notifications_dlq.name
      presence_failures = aws_sqs_queue.presence_failures.name
    },
    var.create_messages_queue ? { messages_dlq = aws_sqs_queue.messages_dlq[0].name } : {},
  )
}

resource "aws_cloudwatch_metric_alarm" "dead_letters" {
  for_each = local.dead_letter_queues

  alarm_name          = "${var.name}-${replace(each.key, "_", "-")}-not-empty"
  alarm_description   = "Messages are waiting in ${each.value}: inspect them, fix the cause, then redrive or delete them."
  namespace           = "AWS/SQS"
  metric_name         = "ApproximateNumberOfMessagesVisible"
  dimensions          = { QueueName = each.value }
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  treat_missing_data  = "notBreaching"
  alarm_actions       = var.alarm_actions
  ok_actions          = var.alarm_actions
  tags                = local.tags
}

resource "aws_cloudwatch_metric_alarm" "lambda_errors" {
  for_each = local.functions

  alarm_name          = "${local.function_names[each.key]}-errors"
  alarm_description   = "The ${each.key} Lambda failed invocations (see its log group)."
  namespace           = "AWS/Lambda"
  metric_name         = "Errors"
  dimensions          = { FunctionName = aws_lambda_function.this[each.key].function_name }
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  treat_missing_data  = "notBreaching"
  alarm_actions       = var.alarm_actions
  ok_actions          = var.alarm_actions
  tags                = local.tags
}
