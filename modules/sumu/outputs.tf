output "websocket_url" {
  description = "The URL clients connect to: wss://…/{stage}?authorization=<JWT>."
  value       = local.websocket_url
}

output "management_endpoint" {
  description = "Base URL of the API Gateway management API (@connections) for this stage: https://…/{stage}."
  value       = local.management_endpoint
}

output "api_id" {
  description = "ID of the WebSocket API."
  value       = aws_apigatewayv2_api.this.id
}

output "api_execution_arn" {
  description = "Execution ARN of the WebSocket API (prefix for execute-api:ManageConnections grants)."
  value       = aws_apigatewayv2_api.this.execution_arn
}

output "stage" {
  description = "Name of the stage."
  value       = aws_apigatewayv2_stage.this.name
}

output "table_name" {
  description = "Name of the connections table."
  value       = aws_dynamodb_table.this.name
}

output "table_arn" {
  description = "ARN of the connections table."
  value       = aws_dynamodb_table.this.arn
}

output "subscriptions_table_name" {
  description = "Name of the subscriptions table (channel pattern, connection_id): a back end may subscribe a live connection by writing an item (docs/channels.md § Storage)."
  value       = aws_dynamodb_table.subscriptions.name
}

output "subscriptions_table_arn" {
  description = "ARN of the subscriptions table."
  value       = aws_dynamodb_table.subscriptions.arn
}

output "history_table_name" {
  description = "Name of the channel history table (channel, offset): each channel's latest offset and epoch, and its kept publications (docs/channels.md § History and recovery). Always created; empty unless channel_namespaces keeps history."
  value       = aws_dynamodb_table.history.name
}

output "history_table_arn" {
  description = "ARN of the channel history table."
  value       = aws_dynamodb_table.history.arn
}

output "members_table_name" {
  description = "Name of the members table (channel, user_id): each tracked channel's members and the live gauges, written by the presence Lambda only (docs/presence.md). Always created."
  value       = aws_dynamodb_table.members.name
}

output "members_table_arn" {
  description = "ARN of the members table."
  value       = aws_dynamodb_table.members.arn
}

output "subscriptions_stream_arn" {
  description = "ARN of the subscriptions table's stream (new and old images), which feeds the presence Lambda."
  value       = aws_dynamodb_table.subscriptions.stream_arn
}

output "table_stream_arn" {
  description = "ARN of the connections table's stream (keys only)."
  value       = aws_dynamodb_table.this.stream_arn
}

output "messages_topic_arn" {
  description = "ARN of the messages topic (client `publish` messages, presence events)."
  value       = local.messages_topic_arn
}

output "messages_queue_arn" {
  description = "ARN of the messages queue (client `send` messages, presence events with presence_destination = queue)."
  value       = local.messages_queue_arn
}

output "messages_queue_url" {
  description = "URL of the messages queue."
  value       = local.messages_queue_url
}

output "messages_dlq_arn" {
  description = "ARN of the messages queue's dead-letter queue (null when the queue is brought by the user)."
  value       = var.create_messages_queue ? aws_sqs_queue.messages_dlq[0].arn : null
}

output "messages_dlq_url" {
  description = "URL of the messages queue's dead-letter queue (null when the queue is brought by the user)."
  value       = var.create_messages_queue ? aws_sqs_queue.messages_dlq[0].url : null
}

output "notifications_topic_arn" {
  description = "ARN of the notifications topic: publish notification requests here."
  value       = local.notifications_topic_arn
}

output "notifications_queue_arn" {
  description = "ARN of the notifications queue: send notification requests here."
  value       = local.notifications_queue_arn
}

output "notifications_queue_url" {
  description = "URL of the notifications queue."
  value       = local.notifications_queue_url
}

output "notifications_dlq_arn" {
  description = "ARN of the pusher's dead-letter queue (rejected or undeliverable notification requests)."
  value       = aws_sqs_queue.notifications_dlq.arn
}

output "notifications_dlq_url" {
  description = "URL of the pusher's dead-letter queue."
  value       = aws_sqs_queue.notifications_dlq.url
}

output "presence_failures_queue_arn" {
  description = "ARN of the queue that records stream batches the presence Lambda could not process."
  value       = aws_sqs_queue.presence_failures.arn
}

output "presence_failures_queue_url" {
  description = "URL of the presence failures queue."
  value       = aws_sqs_queue.presence_failures.url
}

output "function_names" {
  description = "Names of the Lambdas, by role: authorizer, presence, pusher."
  value       = { for fn, f in aws_lambda_function.this : fn => f.function_name }
}

output "function_arns" {
  description = "ARNs of the Lambdas, by role."
  value       = { for fn, f in aws_lambda_function.this : fn => f.arn }
}

output "api_gateway_role_arn" {
  description = "ARN of the role API Gateway assumes for the DynamoDB, SNS and SQS integrations."
  value       = aws_iam_role.api_gateway.arn
}

output "execution_log_group_name" {
  description = "Name of the log group of the stage's execution log (API-Gateway-Execution-Logs_{api_id}/{stage})."
  value       = aws_cloudwatch_log_group.execution.name
}

output "kms_key_policy_statements" {
  description = "With kms_key_arn: the statements the key's policy must contain for the services that use it as their own principals (CloudWatch Logs for the log groups, SNS for dead-lettering into the encrypted notifications DLQ). Add them to the key policy (e.g. concat with your own statements in jsonencode); [] without kms_key_arn."
  value       = local.kms_key_policy_statements
}

output "access_log_group_name" {
  description = "Name of the log group of the stage's JSON access log."
  value       = aws_cloudwatch_log_group.access.name
}

output "dashboard_name" {
  description = "Name of the stack's CloudWatch dashboard (null with dashboard = false)."
  value       = var.dashboard ? aws_cloudwatch_dashboard.this[0].dashboard_name : null
}
