# sumu: an API Gateway WebSocket API whose hot paths are direct service integrations (VTL mapping
# templates to DynamoDB, SNS and SQS), plus three Rust Lambdas (authorizer, presence, pusher).
# The resources are split by concern: api.tf, table.tf, messaging.tf, lambdas.tf, iam.tf, alarms.tf,
# dashboard.tf.

data "aws_region" "current" {}
data "aws_partition" "current" {}

locals {
  # The one route table that sumu-local executes too; the templates are read from the same
  # directory, so what is deployed is byte for byte what the repository (and the emulator) holds.
  templates_dir = "${path.module}/../../mapping-templates"
  route_table   = jsondecode(file("${local.templates_dir}/routes.json"))

  region    = data.aws_region.current.name
  partition = data.aws_partition.current.partition
  # No aws_caller_identity (it calls STS at plan time): the account id is read from an ARN we
  # create (arn:PARTITION:dynamodb:REGION:ACCOUNT:table/NAME); not a role's, since the API
  # Gateway role's own trust policy needs it.
  account_id = split(":", aws_dynamodb_table.this.arn)[4]

  table_name               = coalesce(var.table_name, "${var.name}-connections")
  subscriptions_table_name = "${var.name}-subscriptions"
  history_table_name       = "${var.name}-history"
  members_table_name       = "${var.name}-members"

  functions = toset(["authorizer", "presence", "pusher"])
  function_names = {
    for fn in local.functions : fn => "${var.name}-${fn}"
  }
  lambda_zips = {
    for fn in local.functions : fn => coalesce(var.lambda_zips[fn], "${path.module}/../../target/lambda/${fn}/bootstrap.zip")
  }

  messages_topic_arn      = var.create_messages_topic ? aws_sns_topic.messages[0].arn : var.messages_topic_arn
  messages_queue_arn      = var.create_messages_queue ? aws_sqs_queue.messages[0].arn : var.messages_queue.arn
  messages_queue_url      = var.create_messages_queue ? aws_sqs_queue.messages[0].url : var.messages_queue.url
  notifications_topic_arn = var.create_notifications_topic ? aws_sns_topic.notifications[0].arn : var.notifications_topic_arn
  notifications_queue_arn = var.create_notifications_queue ? aws_sqs_queue.notifications[0].arn : var.notifications_queue.arn
  notifications_queue_url = var.create_notifications_queue ? aws_sqs_queue.notifications[0].url : var.notifications_queue.url

  # API Gateway reports a WebSocket API's endpoint as wss://HOST (emulators may say https://).
  api_host              = element(split("://", aws_apigatewayv2_api.this.api_endpoint), 1)
  websocket_url         = "wss://${local.api_host}/${var.stage}"
  management_endpoint   = "https://${local.api_host}/${var.stage}"
  sns_kms_master_key_id = coalesce(var.kms_key_arn, "alias/aws/sns")

  # A channel_namespaces pattern (variables.tf): `*`, a channel of 1-5 segments of 1-64
  # characters of A-Z a-z 0-9 _ - . : @ = + |, or 1-4 such segments followed by `/*` (a deeper
  # prefix has no channel below it). The Lambdas check the same rules at start.
  namespace_pattern_regex = "^(\\*|[A-Za-z0-9_.:@=+|-]{1,64}(/[A-Za-z0-9_.:@=+|-]{1,64}){0,4}|[A-Za-z0-9_.:@=+|-]{1,64}(/[A-Za-z0-9_.:@=+|-]{1,64}){0,3}/\\*)$"

  tags = merge(var.tags, { "sumu:stack" = var.name })
}
