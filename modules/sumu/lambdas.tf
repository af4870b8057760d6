# The three Rust Lambdas, deployed from the zips scripts/build-lambdas writes
# (target/lambda/<function>/bootstrap.zip): custom runtime on Graviton.

locals {
  # Lambda's logging_config takes TRACE..FATAL for the application, but only DEBUG, INFO or WARN
  # for the system log level (AWS rejects anything else at apply): the nearest allowed level.
  lambda_system_log_level = lookup({ TRACE = "DEBUG", DEBUG = "DEBUG", INFO = "INFO" }, var.lambda_log_level, "WARN")

  # Presence acts on new and removed connections and subscriptions only: without the filter every
  # `ping` (a MODIFY of last_seen_at) would invoke it. Both stream mappings use it, and
  # sumu-local's stream runner applies the same file.
  presence_stream_filter = jsonencode(jsondecode(file("${local.templates_dir}/presence-stream-filter.json")))

  # CHANNEL_NAMESPACES for the pusher and presence: the validated list as compact JSON, every
  # field present (the type's defaults fill the missing ones). Built key by key only so that
  # `pattern` comes first for whoever reads the environment in the console (jsonencode sorts
  # keys); every value is still jsonencode's, and the Lambdas do not care about key order.
  channel_namespaces_json = "[${join(",", [for n in var.channel_namespaces : format(
    "{\"pattern\":%s,\"history_size\":%s,\"history_ttl_seconds\":%s,\"join_leave\":%s,\"lifecycle_events\":%s,\"max_members\":%s}",
    jsonencode(n.pattern), jsonencode(n.history_size), jsonencode(n.history_ttl_seconds), jsonencode(n.join_leave), jsonencode(n.lifecycle_events), jsonencode(n.max_members),
  )])}]"

  lambda_environment = {
    authorizer = merge(var.authorizer_environment, {
      JWT_ISSUERS               = jsonencode(var.issuers)
      JWT_GRANTS_CLAIM          = var.channels.grants_claim
      CHANNELS_STATIC_SUBSCRIBE = join(",", var.channels.static_subscribe)
      CHANNELS_STATIC_PUBLISH   = join(",", var.channels.static_publish)
    })
    presence = merge(var.presence_environment, {
      CONNECTIONS_TABLE                = aws_dynamodb_table.this.name
      SUBSCRIPTIONS_TABLE              = aws_dynamodb_table.subscriptions.name
      MAX_SUBSCRIPTIONS_PER_CONNECTION = tostring(var.channels.max_subscriptions_per_connection)
      HISTORY_TABLE                    = aws_dynamodb_table.history.name
      CHANNEL_NAMESPACES               = local.channel_namespaces_json
      PRESENCE_DESTINATION             = var.presence_destination
      MESSAGES_TOPIC_ARN               = local.messages_topic_arn
      MESSAGES_QUEUE_URL               = local.messages_queue_url
      MEMBERS_TABLE                    = aws_dynamodb_table.members.name
      # join/leave frames go out as notification requests, which the pusher fans out.
      NOTIFICATIONS_QUEUE_URL = local.notifications_queue_url
    })
    pusher = merge(var.pusher_environment, {
      CONNECTIONS_TABLE       = aws_dynamodb_table.this.name
      SUBSCRIPTIONS_TABLE     = aws_dynamodb_table.subscriptions.name
      MANAGEMENT_ENDPOINT     = local.management_endpoint
      NOTIFICATIONS_QUEUE_URL = local.notifications_queue_url
      DEAD_LETTER_QUEUE_URL   = aws_sqs_queue.notifications_dlq.url
      PUSHER_SHARD_THRESHOLD  = tostring(var.limits.pusher_shard_threshold)
      HISTORY_TABLE           = aws_dynamodb_table.history.name
      CHANNEL_NAMESPACES      = local.channel_namespaces_json
    })
  }
  lambda_memory_size = {
    authorizer = var.lambda_settings.authorizer_memory_size
    presence   = var.lambda_settings.presence_memory_size
    pusher     = var.lambda_settings.pusher_memory_size
  }
  lambda_timeout = {
    authorizer = var.lambda_settings.authorizer_timeout
    presence   = var.lambda_settings.presence_timeout
    pusher     = var.lambda_settings.pusher_timeout
  }
}

resource "aws_cloudwatch_log_group" "lambda" {
  for_each = local.functions

  #checkov:skip=CKV_AWS_338:Retention is the log_retention_days input (default 30 days); set 365 or more where policy requires it.

  # The name Lambda uses by default, so logs land in the same place with or without logging_config.
  name              = "/aws/lambda/${local.function_names[each.key]}"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
  tags              = local.tags
}

resource "aws_lambda_function" "this" {
  for_each = local.functions

  #checkov:skip=CKV_AWS_117:The functions call only public AWS endpoints (DynamoDB, SNS, SQS, the management API, the issuers' JWKS); a VPC would add NAT cost and cold-start latency and protect nothing.
  #checkov:skip=CKV_AWS_272:Code signing needs an AWS Signer profile the user must own; the zips are built reproducibly from this repository by scripts/build-lambdas.
  #checkov:skip=CKV_AWS_115:Reserved concurrency is not set by default: on new accounts (unreserved concurrency 10) any reservation fails the apply. The pusher's fan-out is bounded by the event source's maximum_concurrency instead.
  #checkov:skip=CKV_AWS_116:Only the pusher is invoked asynchronously (by SNS) and it has a dead-letter queue; the authorizer and presence functions are invoked synchronously (API Gateway, stream polling with an on-failure destination), where a DLQ never receives anything.
  #checkov:skip=CKV_AWS_173:The environment holds no secrets (table, topic and queue names, issuer URLs); Lambda encrypts it at rest with an AWS managed key.
  function_name = local.function_names[each.key]
  description   = "sumu ${each.key} (${var.name})"
  role          = aws_iam_role.lambda[each.key].arn

  filename         = local.lambda_zips[each.key]
  source_code_hash = fileexists(local.lambda_zips[each.key]) ? filebase64sha256(local.lambda_zips[each.key]) : null
  handler          = "bootstrap"
  runtime          = "provided.al2023"
  architectures    = ["arm64"]
  memory_size      = local.lambda_memory_size[each.key]
  timeout          = local.lambda_timeout[each.key]

  environment {
    variables = local.lambda_environment[each.key]
  }

  dynamic "logging_config" {
    for_each = var.lambda_json_logging ? [1] : []
    content {
      log_format            = "JSON"
      log_group             = aws_cloudwatch_log_group.lambda[each.key].name
      application_log_level = var.lambda_log_level
      system_log_level      = local.lambda_system_log_level
    }
  }

  tracing_config {
    mode = "Active"
  }

  # Asynchronous invocations (the notifications topic's) that still fail after Lambda's retries.
  # Only the pusher is invoked asynchronously, and only when the topic is attached to it.
  dynamic "dead_letter_config" {
    for_each = each.key == "pusher" && var.attach_event_sources ? [1] : []
    content {
      target_arn = aws_sqs_queue.notifications_dlq.arn
    }
  }

  tags = local.tags

  depends_on = [aws_cloudwatch_log_group.lambda, aws_iam_role_policy.lambda]

  lifecycle {
    precondition {
      condition     = fileexists(local.lambda_zips[each.key])
      error_message = "No Lambda package at ${local.lambda_zips[each.key]}: run scripts/build-lambdas first (or set var.lambda_zips)."
    }
  }
}

# API Gateway calls the authorizer on $connect, and the presence function on proxy routes.
resource "aws_lambda_permission" "authorizer" {
  statement_id  = "AllowApiGatewayAuthorizer"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.this["authorizer"].function_name
  principal     = "apigateway.amazonaws.com"
  source_arn    = "${aws_apigatewayv2_api.this.execution_arn}/authorizers/${aws_apigatewayv2_authorizer.this.id}"
}

resource "aws_lambda_permission" "proxy_route" {
  for_each = local.proxy_routes

  statement_id  = "AllowApiGatewayRoute-${replace(each.key, "$", "")}"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.this[each.value.function].function_name
  principal     = "apigateway.amazonaws.com"
  source_arn    = "${aws_apigatewayv2_api.this.execution_arn}/${var.stage}/${each.key}"
}

# Event sources. sumu-local plays them itself, so an emulator stack turns them off.
#
# Two streams feed the presence function with the same settings: the connections table's
# (presence events, subscription cleanup, the live-connections gauge) and the subscriptions
# table's (members, join/leave, lifecycle events, the subscriptions gauge). Presence tells them
# apart by the record's keys (`channel` present = a subscription). The filter passes INSERT and
# REMOVE only: a `ping` (MODIFY of a connection) or a rewrite of a subscription item changes
# nothing, so it must not invoke the function.
resource "aws_lambda_event_source_mapping" "presence_streams" {
  for_each = var.attach_event_sources ? {
    connections   = aws_dynamodb_table.this.stream_arn
    subscriptions = aws_dynamodb_table.subscriptions.stream_arn
  } : {}

  function_name     = aws_lambda_function.this["presence"].arn
  event_source_arn  = each.value
  starting_position = "LATEST"
  batch_size        = var.limits.presence_batch_size
  # One bad record must not hold back the rest: the handler reports failed records, Lambda splits
  # failing batches, retries a bounded number of times, then records the batch in presence_failures.
  function_response_types        = ["ReportBatchItemFailures"]
  bisect_batch_on_function_error = true
  maximum_retry_attempts         = var.limits.presence_max_retry_attempts

  filter_criteria {
    filter {
      pattern = local.presence_stream_filter
    }
  }

  destination_config {
    on_failure {
      destination_arn = aws_sqs_queue.presence_failures.arn
    }
  }
}

# Deployments made before the subscriptions stream existed keep their connections mapping (and
# its place in the stream) instead of replacing it.
moved {
  from = aws_lambda_event_source_mapping.presence_stream[0]
  to   = aws_lambda_event_source_mapping.presence_streams["connections"]
}

resource "aws_lambda_event_source_mapping" "pusher_queue" {
  count = var.attach_event_sources ? 1 : 0

  function_name           = aws_lambda_function.this["pusher"].arn
  event_source_arn        = local.notifications_queue_arn
  batch_size              = var.limits.pusher_batch_size
  function_response_types = ["ReportBatchItemFailures"]

  scaling_config {
    maximum_concurrency = var.limits.pusher_max_concurrency
  }
}

resource "aws_sns_topic_subscription" "pusher" {
  count = var.attach_event_sources ? 1 : 0

  topic_arn = local.notifications_topic_arn
  protocol  = "lambda"
  endpoint  = aws_lambda_function.this["pusher"].arn
  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.notifications_dlq.arn
  })

  depends_on = [aws_lambda_permission.pusher_sns, aws_sqs_queue_policy.notifications_dlq]
}

resource "aws_lambda_permission" "pusher_sns" {
  count = var.attach_event_sources ? 1 : 0

  statement_id  = "AllowNotificationsTopic"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.this["pusher"].function_name
  principal     = "sns.amazonaws.com"
  source_arn    = local.notifications_topic_arn
}
