output "websocket_url" {
  description = "Connect here: wss://…/{stage}?authorization=<JWT>."
  value       = module.sumu.websocket_url
}

output "custom_domain_websocket_url" {
  description = "The same API through the custom domain (null without one)."
  value       = var.custom_domain == null ? null : module.custom_domain[0].websocket_url
}

output "management_endpoint" {
  description = "The management API (@connections) base URL."
  value       = module.sumu.management_endpoint
}

output "messages_topic_arn" {
  description = "Subscribe your back end here for client `publish` messages and presence events."
  value       = module.sumu.messages_topic_arn
}

output "messages_queue_url" {
  description = "Poll this queue for client `send` messages."
  value       = module.sumu.messages_queue_url
}

output "notifications_topic_arn" {
  description = "Publish notification requests here to push to clients."
  value       = module.sumu.notifications_topic_arn
}

output "notifications_queue_url" {
  description = "Or send notification requests to this queue."
  value       = module.sumu.notifications_queue_url
}

output "notifications_dlq_url" {
  description = "The pusher's dead-letter queue: rejected and undeliverable notification requests (the conformance suite reads it)."
  value       = module.sumu.notifications_dlq_url
}

output "table_name" {
  description = "The connections table."
  value       = module.sumu.table_name
}

output "history_table_name" {
  description = "The channel history table (empty unless channel_namespaces keeps history)."
  value       = module.sumu.history_table_name
}

output "members_table_name" {
  description = "The members table (each tracked channel's members and the live gauges; written by the presence Lambda only)."
  value       = module.sumu.members_table_name
}

output "dashboard_name" {
  description = "The stack's CloudWatch dashboard (null with dashboard = false)."
  value       = module.sumu.dashboard_name
}

output "function_names" {
  description = "The Lambdas (their logs are in /aws/lambda/<name>)."
  value       = module.sumu.function_names
}

output "demo_backend_function_name" {
  description = "The demo back end Lambda (null when create_demo_backend = false); its logs are in /aws/lambda/<name>."
  value       = var.create_demo_backend ? aws_lambda_function.demo_backend[0].function_name : null
}

output "demo_user_pool_id" {
  description = "The demo Cognito user pool (null when create_demo_user_pool = false)."
  value       = var.create_demo_user_pool ? aws_cognito_user_pool.demo[0].id : null
}

output "demo_client_id" {
  description = "The demo app client id: the audience of the demo ID tokens."
  value       = var.create_demo_user_pool ? aws_cognito_user_pool_client.demo[0].id : null
}

output "region" {
  description = "The region the stack is in."
  value       = var.region
}
