output "api_id" {
  description = "ID of the WebSocket API in the emulator."
  value       = module.sumu.api_id
}

output "stage" {
  description = "Name of the stage."
  value       = module.sumu.stage
}

output "table_name" {
  description = "Name of the connections table."
  value       = module.sumu.table_name
}

output "history_table_name" {
  description = "Name of the channel history table."
  value       = module.sumu.history_table_name
}

output "members_table_name" {
  description = "Name of the members table (channel members and the live gauges)."
  value       = module.sumu.members_table_name
}

output "subscriptions_stream_arn" {
  description = "ARN of the subscriptions table's stream (sumu-local polls it into the presence handler)."
  value       = module.sumu.subscriptions_stream_arn
}

output "table_stream_arn" {
  description = "ARN of the table's stream (sumu-local polls it into the presence handler)."
  value       = module.sumu.table_stream_arn
}

output "messages_topic_arn" {
  description = "ARN of the messages topic."
  value       = module.sumu.messages_topic_arn
}

output "messages_queue_url" {
  description = "URL of the messages queue."
  value       = module.sumu.messages_queue_url
}

output "notifications_topic_arn" {
  description = "ARN of the notifications topic."
  value       = module.sumu.notifications_topic_arn
}

output "notifications_queue_url" {
  description = "URL of the notifications queue."
  value       = module.sumu.notifications_queue_url
}

output "notifications_dlq_url" {
  description = "URL of the pusher's dead-letter queue."
  value       = module.sumu.notifications_dlq_url
}

output "function_names" {
  description = "Names of the Lambdas."
  value       = module.sumu.function_names
}
