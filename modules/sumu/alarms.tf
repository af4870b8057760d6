# Something is wrong when a dead-letter queue holds a message, a function fails, or an integration
# of the stage fails.

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

# A one-way route (send, publish, emit) whose SQS or SNS call fails answers the client nothing: "If a route is configured for one-way communication, then
# regardless of any integration response configuration, no response will be returned over the
# WebSocket channel after the message is processed" (API Gateway Developer Guide, "Set up a
# WebSocket API integration response"). The message is dropped; only this metric sees it:
# "IntegrationError: The number of requests that return a 4XX/5XX response from the
# integration", filtered by the dimensions "ApiId, Stage" (API Gateway Developer Guide, "Monitor
# WebSocket API execution with CloudWatch metrics"; namespace AWS/ApiGateway). A `ping` from a
# connection that is already gone is also a 4XX of its integration (answered `gone`), so a lone
# error may be one: the access log's routeKey and integrationError tell them apart.
resource "aws_cloudwatch_metric_alarm" "integration_errors" {
  alarm_name          = "${var.name}-${var.stage}-integration-errors"
  alarm_description   = "Integrations of stage ${var.stage} failed; a failed send, publish or emit was dropped without an answer to the client. Find routeKey and integrationError in the access log ${aws_cloudwatch_log_group.access.name}."
  namespace           = "AWS/ApiGateway"
  metric_name         = "IntegrationError"
  dimensions          = { ApiId = aws_apigatewayv2_api.this.id, Stage = var.stage }
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
