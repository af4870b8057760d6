# Resource shapes of the module, against a mocked AWS provider (no credentials, no network).
# Run from modules/sumu: `terraform test`.

mock_provider "aws" {
  source = "./tests"
}

# Their own ARNs, so policies on the three tables can be told apart (the mock gives every table one).
override_resource {
  target = aws_dynamodb_table.subscriptions
  values = {
    arn = "arn:aws:dynamodb:eu-west-1:123456789012:table/sumu-test-subscriptions"
  }
}

override_resource {
  target = aws_dynamodb_table.history
  values = {
    arn = "arn:aws:dynamodb:eu-west-1:123456789012:table/sumu-test-history"
  }
}

variables {
  name = "sumu-test"
  issuers = [{
    issuer    = "https://issuer.example.com/"
    jwks_uri  = "https://issuer.example.com/.well-known/jwks.json"
    audiences = ["app"]
  }]
  lambda_zips = {
    authorizer = "tests/fixtures/bootstrap.zip"
    presence   = "tests/fixtures/bootstrap.zip"
    pusher     = "tests/fixtures/bootstrap.zip"
  }
}

run "connections_table" {
  command = apply

  assert {
    condition     = aws_dynamodb_table.this.name == "sumu-test-connections"
    error_message = "The table name must default to {name}-connections."
  }
  assert {
    condition     = aws_dynamodb_table.this.hash_key == "user_id" && aws_dynamodb_table.this.range_key == "connection_id"
    error_message = "The table's keys must be user_id (partition) and connection_id (sort)."
  }
  assert {
    condition     = toset([for a in aws_dynamodb_table.this.attribute : "${a.name}:${a.type}"]) == toset(["user_id:S", "connection_id:S"])
    error_message = "Only the key attributes are declared, both strings."
  }
  assert {
    condition     = aws_dynamodb_table.this.ttl[0].attribute_name == "expires_at" && aws_dynamodb_table.this.ttl[0].enabled
    error_message = "TTL must be enabled on expires_at."
  }
  assert {
    condition     = aws_dynamodb_table.this.stream_enabled && aws_dynamodb_table.this.stream_view_type == "KEYS_ONLY"
    error_message = "The stream must be on, keys only."
  }
  assert {
    condition = [for g in aws_dynamodb_table.this.global_secondary_index : [g.name, g.hash_key, g.projection_type]] == [
      ["connection_id-index", "connection_id", "KEYS_ONLY"]
    ]
    error_message = "Exactly one GSI: connection_id-index on connection_id, keys only."
  }
  assert {
    condition     = aws_dynamodb_table.this.point_in_time_recovery[0].enabled && aws_dynamodb_table.this.server_side_encryption[0].enabled
    error_message = "Point-in-time recovery and server-side encryption must be on."
  }
}

run "routes_follow_routes_json" {
  command = apply

  assert {
    condition     = aws_apigatewayv2_api.this.protocol_type == "WEBSOCKET"
    error_message = "The API must be a WebSocket API."
  }
  assert {
    condition     = aws_apigatewayv2_api.this.route_selection_expression == jsondecode(file("../../mapping-templates/routes.json")).route_selection_expression
    error_message = "The route selection expression must be routes.json's."
  }
  assert {
    condition     = toset([for r in aws_apigatewayv2_route.this : r.route_key]) == toset(keys(jsondecode(file("../../mapping-templates/routes.json")).routes))
    error_message = "The route set must equal routes.json's."
  }
  assert {
    condition     = [for k, r in aws_apigatewayv2_route.this : k if r.authorization_type == "CUSTOM"] == ["$connect"]
    error_message = "Only $connect is authorized (CUSTOM); every other route has NONE."
  }
  assert {
    condition     = aws_apigatewayv2_route.this["$connect"].authorizer_id == aws_apigatewayv2_authorizer.this.id
    error_message = "$connect must use the JWT authorizer."
  }
  assert {
    condition     = aws_apigatewayv2_authorizer.this.authorizer_type == "REQUEST" && aws_apigatewayv2_authorizer.this.identity_sources == toset(["route.request.querystring.authorization"])
    error_message = "The authorizer must be a REQUEST authorizer whose identity source is the authorization query parameter."
  }
  assert {
    condition = alltrue([for k, r in jsondecode(file("../../mapping-templates/routes.json")).routes :
      aws_apigatewayv2_integration.this[k].integration_type == r.integration.type
    ])
    error_message = "Every route's integration type must be routes.json's."
  }
  assert {
    condition = alltrue([for k, r in jsondecode(file("../../mapping-templates/routes.json")).routes :
      aws_apigatewayv2_integration.this[k].integration_uri == "arn:aws:apigateway:eu-west-1:${r.integration.service}:action/${r.integration.action}"
      if r.integration.type == "AWS"
    ])
    error_message = "AWS integrations must call arn:aws:apigateway:{region}:{service}:action/{Action}."
  }
  assert {
    condition = alltrue([for k, r in jsondecode(file("../../mapping-templates/routes.json")).routes :
      aws_apigatewayv2_integration.this[k].credentials_arn == aws_iam_role.api_gateway.arn && aws_apigatewayv2_integration.this[k].integration_method == "POST"
      if r.integration.type == "AWS"
    ])
    error_message = "AWS integrations must POST with the API Gateway role's credentials."
  }
  assert {
    condition = alltrue([for k, r in jsondecode(file("../../mapping-templates/routes.json")).routes :
      aws_apigatewayv2_integration.this[k].request_templates == tomap({ "$default" = file("../../mapping-templates/${r.integration.request_template}") })
      && aws_apigatewayv2_integration.this[k].template_selection_expression == "\\$default"
      && aws_apigatewayv2_integration.this[k].passthrough_behavior == "NEVER"
      if try(r.integration.request_template, null) != null
    ])
    error_message = "Every templated integration must carry its template file byte for byte, always select it, and never pass a request through."
  }
  assert {
    condition = alltrue([for k, r in jsondecode(file("../../mapping-templates/routes.json")).routes :
      aws_apigatewayv2_integration.this[k].request_parameters == tomap({ "integration.request.header.Content-Type" = "'application/x-www-form-urlencoded'" })
      if try(r.integration.content_type, "") == "application/x-www-form-urlencoded"
    ])
    error_message = "Query-protocol integrations (SNS, SQS) must send the form content type."
  }
  assert {
    condition = toset(keys(aws_apigatewayv2_integration_response.this)) == toset(flatten([
      for k, r in jsondecode(file("../../mapping-templates/routes.json")).routes : [for sel, t in r.integration_responses : "${k} ${sel}"]
    ]))
    error_message = "The integration responses must be exactly routes.json's."
  }
  assert {
    condition = alltrue(flatten([for k, r in jsondecode(file("../../mapping-templates/routes.json")).routes : [
      for sel, t in r.integration_responses :
      aws_apigatewayv2_integration_response.this["${k} ${sel}"].integration_response_key == sel
      && (t == null
        ? aws_apigatewayv2_integration_response.this["${k} ${sel}"].response_templates == null
        : aws_apigatewayv2_integration_response.this["${k} ${sel}"].response_templates == tomap({ "$default" = file("../../mapping-templates/${t}") })
      )
    ]]))
    error_message = "Each integration response must be keyed and templated as routes.json says (null: no template)."
  }
  assert {
    condition = alltrue([for k, i in aws_apigatewayv2_integration.this :
      length([for key in keys(aws_apigatewayv2_integration_response.this) : key if startswith(key, "${k} ")]) > 0 if i.integration_type != "AWS_PROXY"
    ])
    error_message = "AWS requires an integration response on every non-proxy integration: each has at least one."
  }
  assert {
    condition     = toset(keys(aws_apigatewayv2_route_response.this)) == toset([for k, r in jsondecode(file("../../mapping-templates/routes.json")).routes : k if r.route_response])
    error_message = "Route responses must exist exactly where routes.json says."
  }
  assert {
    condition = alltrue([for k, r in jsondecode(file("../../mapping-templates/routes.json")).routes :
      (aws_apigatewayv2_route.this[k].route_response_selection_expression == "$default") == r.route_response
    ])
    error_message = "Routes with a route response select it with $default; the others have no selection expression."
  }
}

run "stage" {
  command = apply

  assert {
    condition     = aws_apigatewayv2_stage.this.name == "live" && aws_apigatewayv2_stage.this.auto_deploy
    error_message = "The stage defaults to 'live' and deploys itself."
  }
  assert {
    condition     = toset(keys(aws_apigatewayv2_stage.this.stage_variables)) == toset(jsondecode(file("../../mapping-templates/routes.json")).stage_variables)
    error_message = "The stage variables must be exactly those routes.json names."
  }
  assert {
    condition     = aws_apigatewayv2_stage.this.stage_variables["connections_table"] == "sumu-test-connections"
    error_message = "connections_table must carry the table's name."
  }
  assert {
    condition     = aws_apigatewayv2_stage.this.stage_variables["actions"] == "emit,history,ping,presence,publish,send,subscribe,unsubscribe"
    error_message = "The actions stage variable lists routes.json's keys without a leading $, sorted."
  }
  assert {
    condition = (
      aws_apigatewayv2_stage.this.stage_variables["notifications_queue_url"] == aws_sqs_queue.notifications[0].url
      && aws_apigatewayv2_stage.this.stage_variables["notifications_topic_arn"] == aws_sns_topic.notifications[0].arn
    )
    error_message = "The notifications queue and topic (where refused send/publish answers go) are stage variables."
  }
  assert {
    condition     = aws_apigatewayv2_stage.this.default_route_settings[0].throttling_rate_limit == 1000 && aws_apigatewayv2_stage.this.default_route_settings[0].throttling_burst_limit == 500
    error_message = "Default route throttling must be set."
  }
  assert {
    condition     = !aws_apigatewayv2_stage.this.default_route_settings[0].data_trace_enabled
    error_message = "Data tracing would log tokens and message bodies."
  }
  assert {
    condition     = can(jsondecode(aws_apigatewayv2_stage.this.access_log_settings[0].format))
    error_message = "The access log format must be JSON."
  }
  assert {
    condition = alltrue([for k, v in jsondecode(aws_apigatewayv2_stage.this.access_log_settings[0].format) :
      length(regexall("(?i)querystring|authorization|\\$input|\\$request|\\$context\\.(requestOverride|integration\\.response)", v)) == 0
    ])
    error_message = "The access log must never log the query string (it carries the JWT) or the request."
  }
  assert {
    condition     = output.websocket_url == "wss://abc123.execute-api.eu-west-1.amazonaws.com/live"
    error_message = "websocket_url must be wss://{api host}/{stage}."
  }
  assert {
    condition     = output.management_endpoint == "https://abc123.execute-api.eu-west-1.amazonaws.com/live"
    error_message = "management_endpoint must be https://{api host}/{stage}."
  }
  assert {
    condition     = aws_cloudwatch_log_group.access.retention_in_days == 30
    error_message = "The access log group must have the configured retention."
  }
  assert {
    condition     = aws_cloudwatch_log_group.execution.name == "API-Gateway-Execution-Logs_abc123/live"
    error_message = "The execution log group must have the name API Gateway writes to: API-Gateway-Execution-Logs_{api_id}/{stage}."
  }
  assert {
    condition     = aws_cloudwatch_log_group.execution.retention_in_days == 30 && aws_cloudwatch_log_group.execution.kms_key_id == null
    error_message = "The execution log group has the configured retention, and no customer managed key unless kms_key_arn is set."
  }
  assert {
    condition     = output.execution_log_group_name == aws_cloudwatch_log_group.execution.name
    error_message = "execution_log_group_name must name the execution log group."
  }
}

run "log_retention_reaches_every_log_group" {
  command = apply

  variables {
    log_retention_days = 365
    stage              = "v1"
  }

  assert {
    condition = alltrue([for g in concat(values(aws_cloudwatch_log_group.lambda), [aws_cloudwatch_log_group.access, aws_cloudwatch_log_group.execution]) :
      g.retention_in_days == 365
    ])
    error_message = "log_retention_days must reach the Lambda, access and execution log groups."
  }
  assert {
    condition     = aws_cloudwatch_log_group.execution.name == "API-Gateway-Execution-Logs_abc123/v1"
    error_message = "The execution log group follows the stage name."
  }
}

run "lambdas" {
  command = apply

  assert {
    condition     = toset(keys(aws_lambda_function.this)) == toset(["authorizer", "presence", "pusher"])
    error_message = "The three Lambdas must exist."
  }
  assert {
    condition = alltrue([for f in aws_lambda_function.this :
      f.runtime == "provided.al2023" && f.architectures == tolist(["arm64"]) && f.handler == "bootstrap"
    ])
    error_message = "Every Lambda runs provided.al2023 on arm64."
  }
  assert {
    condition     = alltrue([for f in aws_lambda_function.this : f.logging_config[0].log_format == "JSON"])
    error_message = "Every Lambda logs JSON."
  }
  assert {
    condition     = alltrue([for f in aws_lambda_function.this : f.logging_config[0].application_log_level == "INFO" && f.logging_config[0].system_log_level == "INFO"])
    error_message = "The default log level is INFO for the application and the system."
  }
  assert {
    condition     = alltrue([for k, g in aws_cloudwatch_log_group.lambda : g.name == "/aws/lambda/sumu-test-${k}" && g.retention_in_days == 30])
    error_message = "Every Lambda has its own log group with retention."
  }
  assert {
    condition     = output.function_names == { authorizer = "sumu-test-authorizer", presence = "sumu-test-presence", pusher = "sumu-test-pusher" }
    error_message = "function_names must name the three functions."
  }
  assert {
    condition     = aws_lambda_function.this["authorizer"].environment[0].variables["JWT_ISSUERS"] == jsonencode(var.issuers)
    error_message = "The authorizer gets the issuers as JSON in JWT_ISSUERS."
  }
  assert {
    condition = aws_lambda_function.this["presence"].environment[0].variables == tomap({
      CONNECTIONS_TABLE                = "sumu-test-connections"
      SUBSCRIPTIONS_TABLE              = "sumu-test-subscriptions"
      MAX_SUBSCRIPTIONS_PER_CONNECTION = "100"
      HISTORY_TABLE                    = "sumu-test-history"
      CHANNEL_NAMESPACES               = "[]"
      PRESENCE_DESTINATION             = "topic"
      MESSAGES_TOPIC_ARN               = "arn:aws:sns:eu-west-1:123456789012:mock"
      MESSAGES_QUEUE_URL               = "https://sqs.eu-west-1.amazonaws.com/123456789012/mock"
      MEMBERS_TABLE                    = "sumu-test-members"
      NOTIFICATIONS_QUEUE_URL          = "https://sqs.eu-west-1.amazonaws.com/123456789012/mock"
    })
    error_message = "The presence Lambda's environment is wrong."
  }
  assert {
    condition     = aws_lambda_function.this["pusher"].environment[0].variables["MANAGEMENT_ENDPOINT"] == "https://abc123.execute-api.eu-west-1.amazonaws.com/live"
    error_message = "The pusher must post to the stage's management endpoint."
  }
  assert {
    condition     = aws_lambda_function.this["pusher"].environment[0].variables["SUBSCRIPTIONS_TABLE"] == "sumu-test-subscriptions"
    error_message = "The pusher reads channel subscribers from the subscriptions table."
  }
  assert {
    condition = (
      aws_lambda_function.this["authorizer"].environment[0].variables["JWT_GRANTS_CLAIM"] == "channels"
      && aws_lambda_function.this["authorizer"].environment[0].variables["CHANNELS_STATIC_SUBSCRIBE"] == ""
      && aws_lambda_function.this["authorizer"].environment[0].variables["CHANNELS_STATIC_PUBLISH"] == ""
    )
    error_message = "By default the grants come from the `channels` claim and there is no static grant."
  }
  assert {
    condition     = aws_lambda_function.this["pusher"].environment[0].variables["PUSHER_SHARD_THRESHOLD"] == "10000"
    error_message = "The pusher must get limits.pusher_shard_threshold (default 10000) as PUSHER_SHARD_THRESHOLD."
  }
  assert {
    condition     = aws_lambda_function.this["pusher"].dead_letter_config[0].target_arn == aws_sqs_queue.notifications_dlq.arn
    error_message = "The pusher's asynchronous invocations (SNS) must dead-letter to the notifications DLQ."
  }
  assert {
    condition     = aws_lambda_permission.authorizer.source_arn == "arn:aws:execute-api:eu-west-1:123456789012:abc123/authorizers/${aws_apigatewayv2_authorizer.this.id}"
    error_message = "Only this API's authorizer may invoke the authorizer."
  }
  assert {
    condition = alltrue([for k, r in jsondecode(file("../../mapping-templates/routes.json")).routes :
      aws_apigatewayv2_integration.this[k].integration_uri == aws_lambda_function.this[try(r.integration.function, "presence")].invoke_arn
      && aws_lambda_permission.proxy_route[k].source_arn == "arn:aws:execute-api:eu-west-1:123456789012:abc123/live/${k}"
      && aws_lambda_permission.proxy_route[k].principal == "apigateway.amazonaws.com"
      if r.integration.type == "AWS_PROXY"
    ])
    error_message = "Lambda proxy routes (presence) invoke their function, which only that route of this stage may call."
  }
  assert {
    condition     = toset(keys(aws_lambda_permission.proxy_route)) == toset([for k, r in jsondecode(file("../../mapping-templates/routes.json")).routes : k if r.integration.type == "AWS_PROXY"])
    error_message = "Exactly the proxy routes get an invoke permission."
  }
}

run "event_sources" {
  command = apply

  assert {
    condition = (
      aws_lambda_event_source_mapping.presence_streams["connections"].event_source_arn == aws_dynamodb_table.this.stream_arn
      && aws_lambda_event_source_mapping.presence_streams["connections"].bisect_batch_on_function_error
      && aws_lambda_event_source_mapping.presence_streams["connections"].maximum_retry_attempts == 5
      && aws_lambda_event_source_mapping.presence_streams["connections"].function_response_types == toset(["ReportBatchItemFailures"])
      && aws_lambda_event_source_mapping.presence_streams["connections"].destination_config[0].on_failure[0].destination_arn == aws_sqs_queue.presence_failures.arn
    )
    error_message = "stream → presence: bisect on error, bounded retries, per-record failures, on-failure destination."
  }
  assert {
    condition = (
      length(aws_lambda_event_source_mapping.presence_streams["connections"].filter_criteria[0].filter) == 1
      && jsondecode(one(aws_lambda_event_source_mapping.presence_streams["connections"].filter_criteria[0].filter).pattern) == jsondecode(file("../../mapping-templates/presence-stream-filter.json"))
      && jsondecode(file("../../mapping-templates/presence-stream-filter.json")) == { eventName = ["INSERT", "REMOVE"] }
    )
    error_message = "stream → presence only for INSERT and REMOVE (no invocation per ping), from mapping-templates/presence-stream-filter.json."
  }
  assert {
    condition = (
      aws_lambda_event_source_mapping.pusher_queue[0].function_response_types == toset(["ReportBatchItemFailures"])
      && aws_lambda_event_source_mapping.pusher_queue[0].scaling_config[0].maximum_concurrency == 20
      && aws_lambda_event_source_mapping.pusher_queue[0].batch_size == 10
    )
    error_message = "notifications queue → pusher: partial batch failures and a maximum concurrency."
  }
  assert {
    condition = (
      aws_sns_topic_subscription.pusher[0].protocol == "lambda"
      && jsondecode(aws_sns_topic_subscription.pusher[0].redrive_policy).deadLetterTargetArn == aws_sqs_queue.notifications_dlq.arn
    )
    error_message = "notifications topic → pusher, with a dead-letter queue."
  }
  assert {
    condition     = aws_sqs_queue.notifications[0].visibility_timeout_seconds == 360
    error_message = "The notifications queue's visibility timeout must be six times the pusher's timeout."
  }
  assert {
    condition = (
      jsondecode(aws_sqs_queue_redrive_policy.notifications[0].redrive_policy).deadLetterTargetArn == aws_sqs_queue.notifications_dlq.arn
      && jsondecode(aws_sqs_queue_redrive_policy.messages[0].redrive_policy).deadLetterTargetArn == aws_sqs_queue.messages_dlq[0].arn
    )
    error_message = "Both queues redrive to their dead-letter queues."
  }
}

run "iam_least_privilege" {
  command = apply

  # lambdas/pusher/src/store.rs reads every `connections` target with GetItem; moto enforces no
  # IAM, so only this assertion keeps the grant.
  assert {
    condition = anytrue([for s in jsondecode(aws_iam_role_policy.lambda["pusher"].policy).Statement :
      s.Effect == "Allow" && contains(s.Action, "dynamodb:GetItem") && contains(s.Resource, aws_dynamodb_table.this.arn)
    ])
    error_message = "The pusher must be allowed dynamodb:GetItem on the connections table (it reads each target connection by key)."
  }
  assert {
    condition = one([for s in jsondecode(aws_iam_role_policy.lambda["pusher"].policy).Statement : s if s.Sid == "ReadTargetConnection"]) == {
      Sid = "ReadTargetConnection", Effect = "Allow", Action = ["dynamodb:GetItem"], Resource = [aws_dynamodb_table.this.arn]
    }
    error_message = "GetItem is its own statement, on the connections table only (not its index, not the subscriptions table)."
  }
  assert {
    condition = jsondecode(aws_iam_role.api_gateway.assume_role_policy).Statement == [{
      Effect    = "Allow"
      Action    = "sts:AssumeRole"
      Principal = { Service = "apigateway.amazonaws.com" }
      Condition = { StringEqualsIfExists = { "aws:SourceAccount" = "123456789012" } }
    }]
    error_message = "API Gateway may assume its integration role only on behalf of this account (aws:SourceAccount, from the table's ARN) whenever it names one."
  }
  assert {
    condition     = alltrue([for r in aws_iam_role.lambda : jsondecode(r.assume_role_policy).Statement[0].Principal.Service == "lambda.amazonaws.com"])
    error_message = "The functions' roles are assumed by Lambda."
  }

  assert {
    condition = toset(jsondecode(aws_iam_role_policy.lambda["pusher"].policy).Statement[index(jsondecode(aws_iam_role_policy.lambda["pusher"].policy).Statement[*].Sid, "ManageConnections")].Resource) == toset([
      "arn:aws:execute-api:eu-west-1:123456789012:abc123/live/POST/@connections/*",
      "arn:aws:execute-api:eu-west-1:123456789012:abc123/live/GET/@connections/*",
      "arn:aws:execute-api:eu-west-1:123456789012:abc123/live/DELETE/@connections/*",
    ])
    error_message = "The pusher may POST, GET and DELETE @connections of this stage only."
  }
  assert {
    condition     = jsondecode(aws_iam_role_policy.lambda["pusher"].policy).Statement[index(jsondecode(aws_iam_role_policy.lambda["pusher"].policy).Statement[*].Sid, "EstimateBroadcastSize")].Action == ["dynamodb:DescribeTable"]
    error_message = "The pusher may DescribeTable (to split a broadcast into shards)."
  }
  assert {
    condition = alltrue(flatten([for p in concat(values(aws_iam_role_policy.lambda), [aws_iam_role_policy.api_gateway]) : [
      for s in jsondecode(p.policy).Statement : contains(["XRayTraces", "ListTableStreams"], s.Sid) || !contains(s.Resource, "*")
    ]]))
    error_message = "No statement but those of actions without resource-level permissions (X-Ray, dynamodb:ListStreams) may use the * resource."
  }
  assert {
    condition = toset(flatten([for s in jsondecode(aws_iam_role_policy.api_gateway.policy).Statement : s.Action])) == toset([
      "dynamodb:PutItem", "dynamodb:DeleteItem", "dynamodb:UpdateItem", "sns:Publish", "sqs:SendMessage",
    ])
    error_message = "API Gateway may only write connections and publish/send messages."
  }
  assert {
    condition     = !contains(flatten([for s in jsondecode(aws_iam_role_policy.lambda["presence"].policy).Statement : s.Action]), "sqs:SendMessage") || contains(jsondecode(aws_iam_role_policy.lambda["presence"].policy).Statement[*].Sid, "RecordFailedStreamBatches")
    error_message = "presence may send only to its failure queue with presence_destination = topic."
  }
  assert {
    condition     = contains(jsondecode(aws_iam_role_policy.lambda["presence"].policy).Statement[*].Sid, "PublishPresenceToTopic") && !contains(jsondecode(aws_iam_role_policy.lambda["presence"].policy).Statement[*].Sid, "SendPresenceToQueue")
    error_message = "With presence_destination = topic, presence publishes to the topic and not to the queue."
  }
  assert {
    condition     = length(jsondecode(aws_iam_role_policy.lambda["authorizer"].policy).Statement) == 2
    error_message = "The authorizer may only write its logs and traces."
  }
}

run "alarms" {
  command = apply

  assert {
    condition     = toset(keys(aws_cloudwatch_metric_alarm.dead_letters)) == toset(["messages_dlq", "notifications_dlq", "presence_failures"])
    error_message = "Every dead-letter queue has a depth alarm."
  }
  assert {
    condition     = toset(keys(aws_cloudwatch_metric_alarm.lambda_errors)) == toset(["authorizer", "presence", "pusher"])
    error_message = "Every Lambda has an errors alarm."
  }
  assert {
    condition = (
      aws_cloudwatch_metric_alarm.integration_errors.namespace == "AWS/ApiGateway"
      && aws_cloudwatch_metric_alarm.integration_errors.metric_name == "IntegrationError"
      && aws_cloudwatch_metric_alarm.integration_errors.dimensions == tomap({ ApiId = "abc123", Stage = "live" })
      && aws_cloudwatch_metric_alarm.integration_errors.statistic == "Sum"
      && aws_cloudwatch_metric_alarm.integration_errors.comparison_operator == "GreaterThanThreshold"
      && aws_cloudwatch_metric_alarm.integration_errors.threshold == 0
      && aws_cloudwatch_metric_alarm.integration_errors.treat_missing_data == "notBreaching"
    )
    error_message = "A failed integration of the stage (a dropped send/publish/emit) must raise the IntegrationError alarm (AWS/ApiGateway, ApiId + Stage)."
  }
}

run "alarms_notify_alarm_actions" {
  command = plan

  variables {
    alarm_actions = ["arn:aws:sns:eu-west-1:123456789012:alarms"]
  }

  assert {
    condition = alltrue([for a in concat(values(aws_cloudwatch_metric_alarm.dead_letters), values(aws_cloudwatch_metric_alarm.lambda_errors), [aws_cloudwatch_metric_alarm.integration_errors]) :
      a.alarm_actions == toset(["arn:aws:sns:eu-west-1:123456789012:alarms"]) && a.ok_actions == toset(["arn:aws:sns:eu-west-1:123456789012:alarms"])
    ])
    error_message = "Every alarm, the integration errors one included, notifies alarm_actions when it fires and recovers."
  }
}

run "presence_to_queue_and_own_topics" {
  command = apply

  variables {
    presence_destination       = "queue"
    create_messages_topic      = false
    messages_topic_arn         = "arn:aws:sns:eu-west-1:123456789012:existing-messages"
    create_notifications_queue = false
    notifications_queue = {
      arn = "arn:aws:sqs:eu-west-1:123456789012:existing-notifications"
      url = "https://sqs.eu-west-1.amazonaws.com/123456789012/existing-notifications"
    }
  }

  assert {
    condition     = length(aws_sns_topic.messages) == 0 && length(aws_sqs_queue.notifications) == 0
    error_message = "Brought topics and queues are not created."
  }
  assert {
    condition     = aws_apigatewayv2_stage.this.stage_variables["messages_topic_arn"] == "arn:aws:sns:eu-west-1:123456789012:existing-messages"
    error_message = "The stage must publish to the brought topic."
  }
  assert {
    condition     = aws_lambda_event_source_mapping.pusher_queue[0].event_source_arn == "arn:aws:sqs:eu-west-1:123456789012:existing-notifications"
    error_message = "The pusher must consume the brought queue."
  }
  assert {
    condition     = contains(jsondecode(aws_iam_role_policy.lambda["presence"].policy).Statement[*].Sid, "SendPresenceToQueue") && !contains(jsondecode(aws_iam_role_policy.lambda["presence"].policy).Statement[*].Sid, "PublishPresenceToTopic")
    error_message = "With presence_destination = queue, presence sends to the queue and does not publish."
  }
  assert {
    condition     = aws_lambda_function.this["presence"].environment[0].variables["PRESENCE_DESTINATION"] == "queue"
    error_message = "The presence Lambda must be told its destination."
  }
  assert {
    condition     = output.notifications_queue_url == "https://sqs.eu-west-1.amazonaws.com/123456789012/existing-notifications"
    error_message = "Outputs must report the brought queue."
  }
}

run "emulator_stack_has_no_event_sources" {
  command = apply

  variables {
    attach_event_sources = false
    lambda_json_logging  = false
  }

  assert {
    condition     = length(aws_lambda_event_source_mapping.presence_streams) == 0 && length(aws_lambda_event_source_mapping.pusher_queue) == 0 && length(aws_sns_topic_subscription.pusher) == 0
    error_message = "With attach_event_sources = false nothing consumes the stream, queue or topic (sumu-local does)."
  }
  assert {
    condition     = alltrue([for f in aws_lambda_function.this : length(f.logging_config) == 0])
    error_message = "lambda_json_logging = false leaves logging_config unset."
  }
  assert {
    condition     = length(aws_lambda_function.this["pusher"].dead_letter_config) == 0
    error_message = "Without the topic attached nothing invokes the pusher asynchronously, so it has no dead-letter config."
  }
}

run "missing_lambda_package" {
  command = plan

  variables {
    lambda_zips = { pusher = "tests/fixtures/does-not-exist.zip" }
  }

  expect_failures = [aws_lambda_function.this]
}

run "customer_managed_key" {
  command = apply

  variables {
    kms_key_arn = "arn:aws:kms:eu-west-1:123456789012:key/11111111-2222-3333-4444-555555555555"
  }

  assert {
    condition     = aws_dynamodb_table.this.server_side_encryption[0].kms_key_arn == var.kms_key_arn && aws_sqs_queue.notifications_dlq.kms_master_key_id == var.kms_key_arn && aws_sns_topic.messages[0].kms_master_key_id == var.kms_key_arn
    error_message = "The key must encrypt the table, queues and topics."
  }
  assert {
    condition     = aws_dynamodb_table.subscriptions.server_side_encryption[0].kms_key_arn == var.kms_key_arn && aws_dynamodb_table.history.server_side_encryption[0].kms_key_arn == var.kms_key_arn
    error_message = "The key must encrypt the subscriptions and history tables too."
  }
  assert {
    condition     = aws_cloudwatch_log_group.execution.kms_key_id == var.kms_key_arn && aws_cloudwatch_log_group.access.kms_key_id == var.kms_key_arn
    error_message = "The key must encrypt the stage's execution and access logs (tests/kms.tftest.hcl checks what each role may do with it)."
  }
}

# AWS accepts only DEBUG, INFO and WARN as logging_config.system_log_level: every application level
# maps to the nearest of them (TRACE would fail the apply).
run "lambda_log_levels_map_to_allowed_system_levels" {
  command = plan

  variables {
    lambda_log_level = "TRACE"
  }

  assert {
    condition     = alltrue([for f in aws_lambda_function.this : f.logging_config[0].application_log_level == "TRACE" && f.logging_config[0].system_log_level == "DEBUG"])
    error_message = "TRACE logs TRACE from the application and DEBUG (the most AWS allows) from the system."
  }
}

run "lambda_log_level_error_keeps_system_warn" {
  command = plan

  variables {
    lambda_log_level = "ERROR"
  }

  assert {
    condition     = alltrue([for f in aws_lambda_function.this : f.logging_config[0].application_log_level == "ERROR" && f.logging_config[0].system_log_level == "WARN"])
    error_message = "ERROR (and FATAL) keep the system log at WARN, the least AWS allows."
  }
}

run "subscriptions_table" {
  command = apply

  assert {
    condition = (
      aws_dynamodb_table.subscriptions.name == "sumu-test-subscriptions"
      && aws_dynamodb_table.subscriptions.hash_key == "channel" && aws_dynamodb_table.subscriptions.range_key == "connection_id"
      && aws_dynamodb_table.subscriptions.billing_mode == "PAY_PER_REQUEST"
    )
    error_message = "Subscriptions are keyed by (channel pattern, connection_id), on demand."
  }
  assert {
    condition     = aws_dynamodb_table.subscriptions.ttl[0].attribute_name == "expires_at" && aws_dynamodb_table.subscriptions.ttl[0].enabled
    error_message = "TTL collects subscriptions on expires_at (the connection's)."
  }
  assert {
    condition = [for g in aws_dynamodb_table.subscriptions.global_secondary_index : [g.name, g.hash_key, g.projection_type]] == [
      ["connection_id-index", "connection_id", "KEYS_ONLY"]
    ]
    error_message = "One GSI, connection_id-index, keys only: a connection's subscriptions for the cleanup."
  }
  assert {
    condition     = aws_dynamodb_table.subscriptions.stream_enabled && aws_dynamodb_table.subscriptions.stream_view_type == "NEW_AND_OLD_IMAGES" && aws_dynamodb_table.subscriptions.point_in_time_recovery[0].enabled && aws_dynamodb_table.subscriptions.server_side_encryption[0].enabled
    error_message = "A stream of new and old images (presence's input, tests/presence.tftest.hcl); point-in-time recovery and encryption on."
  }
  assert {
    condition     = output.subscriptions_table_name == "sumu-test-subscriptions" && output.subscriptions_table_arn == aws_dynamodb_table.subscriptions.arn
    error_message = "The subscriptions table is an output (back ends may subscribe connections themselves)."
  }
  assert {
    condition     = jsondecode(aws_iam_role_policy.lambda["pusher"].policy).Statement[index(jsondecode(aws_iam_role_policy.lambda["pusher"].policy).Statement[*].Sid, "FindChannelSubscribers")].Resource == [aws_dynamodb_table.subscriptions.arn]
    error_message = "The pusher Queries the subscriptions table."
  }
  assert {
    condition = !anytrue([for s in jsondecode(aws_iam_role_policy.lambda["pusher"].policy).Statement :
      contains(s.Action, "dynamodb:Scan") && contains(s.Resource, aws_dynamodb_table.subscriptions.arn)
    ])
    error_message = "The pusher may never Scan the subscriptions table."
  }
  assert {
    condition = anytrue([for s in jsondecode(aws_iam_role_policy.lambda["presence"].policy).Statement :
      toset(s.Action) == toset(["dynamodb:Query"]) && toset(s.Resource) == toset(["${aws_dynamodb_table.subscriptions.arn}/index/connection_id-index"])
    ])
    error_message = "The presence Lambda finds a connection's subscriptions through the GSI only."
  }
}

run "channel_settings_reach_the_lambdas" {
  command = plan

  variables {
    channels = {
      grants_claim                     = "https://example.com/channels"
      static_subscribe                 = ["public/*", "user/{sub}"]
      static_publish                   = ["user/{sub}/*"]
      max_subscriptions_per_connection = 20
    }
  }

  assert {
    condition = (
      aws_lambda_function.this["authorizer"].environment[0].variables["JWT_GRANTS_CLAIM"] == "https://example.com/channels"
      && aws_lambda_function.this["authorizer"].environment[0].variables["CHANNELS_STATIC_SUBSCRIBE"] == "public/*,user/{sub}"
      && aws_lambda_function.this["authorizer"].environment[0].variables["CHANNELS_STATIC_PUBLISH"] == "user/{sub}/*"
    )
    error_message = "The claim name and the static grants (comma-separated) reach the authorizer."
  }
  assert {
    condition     = aws_lambda_function.this["presence"].environment[0].variables["MAX_SUBSCRIPTIONS_PER_CONNECTION"] == "20"
    error_message = "The cap reaches the presence Lambda."
  }
}

run "history_table" {
  command = apply

  assert {
    condition = (
      aws_dynamodb_table.history.name == "sumu-test-history"
      && aws_dynamodb_table.history.hash_key == "channel" && aws_dynamodb_table.history.range_key == "offset"
      && aws_dynamodb_table.history.billing_mode == "PAY_PER_REQUEST"
    )
    error_message = "History is keyed by (channel, offset), on demand, named {name}-history."
  }
  assert {
    condition     = toset([for a in aws_dynamodb_table.history.attribute : "${a.name}:${a.type}"]) == toset(["channel:S", "offset:N"])
    error_message = "Only the key attributes are declared: channel a string, offset a number (a Query reads offsets in order)."
  }
  assert {
    condition     = aws_dynamodb_table.history.ttl[0].attribute_name == "expires_at" && aws_dynamodb_table.history.ttl[0].enabled
    error_message = "TTL collects history items on expires_at."
  }
  assert {
    condition     = length(aws_dynamodb_table.history.global_secondary_index) == 0 && length(aws_dynamodb_table.history.local_secondary_index) == 0
    error_message = "The history table has no index: every read is by channel."
  }
  assert {
    condition     = !coalesce(aws_dynamodb_table.history.stream_enabled, false) && aws_dynamodb_table.history.point_in_time_recovery[0].enabled && aws_dynamodb_table.history.server_side_encryption[0].enabled
    error_message = "No stream; point-in-time recovery and encryption on, like the other tables."
  }
  assert {
    condition     = aws_dynamodb_table.history.tags == tomap({ "sumu:stack" = "sumu-test" })
    error_message = "The history table carries the stack's tags."
  }
  assert {
    condition     = output.history_table_name == "sumu-test-history" && output.history_table_arn == "arn:aws:dynamodb:eu-west-1:123456789012:table/sumu-test-history"
    error_message = "The history table's name and ARN are outputs."
  }
  assert {
    condition = (
      aws_lambda_function.this["pusher"].environment[0].variables["HISTORY_TABLE"] == "sumu-test-history"
      && aws_lambda_function.this["presence"].environment[0].variables["HISTORY_TABLE"] == "sumu-test-history"
      && !contains(keys(aws_lambda_function.this["authorizer"].environment[0].variables), "HISTORY_TABLE")
    )
    error_message = "The pusher and presence (not the authorizer) get HISTORY_TABLE."
  }
  assert {
    condition = (
      aws_lambda_function.this["pusher"].environment[0].variables["CHANNEL_NAMESPACES"] == "[]"
      && aws_lambda_function.this["presence"].environment[0].variables["CHANNEL_NAMESPACES"] == "[]"
    )
    error_message = "Without channel_namespaces the pusher and presence get CHANNEL_NAMESPACES = [] (no channel keeps history)."
  }
}

# Least privilege on the history table: its own statements, on its ARN only (no index), and
# only the actions HISTORY.md's storage needs.
run "history_iam" {
  command = apply

  assert {
    condition = [for s in jsondecode(aws_iam_role_policy.lambda["pusher"].policy).Statement : s if s.Sid == "AssignChannelOffsets" || s.Sid == "StoreChannelHistory"] == [
      { Sid = "AssignChannelOffsets", Effect = "Allow", Action = ["dynamodb:UpdateItem"], Resource = ["arn:aws:dynamodb:eu-west-1:123456789012:table/sumu-test-history"] },
      { Sid = "StoreChannelHistory", Effect = "Allow", Action = ["dynamodb:PutItem"], Resource = ["arn:aws:dynamodb:eu-west-1:123456789012:table/sumu-test-history"] },
    ]
    error_message = "The pusher may UpdateItem (offsets) and PutItem (publications) on the history table, each its own statement."
  }
  assert {
    condition = [for s in jsondecode(aws_iam_role_policy.lambda["presence"].policy).Statement : s if s.Sid == "ReadChannelOffset" || s.Sid == "StartChannelSequence" || s.Sid == "ReadChannelHistory"] == [
      { Sid = "ReadChannelOffset", Effect = "Allow", Action = ["dynamodb:GetItem"], Resource = ["arn:aws:dynamodb:eu-west-1:123456789012:table/sumu-test-history"] },
      { Sid = "StartChannelSequence", Effect = "Allow", Action = ["dynamodb:UpdateItem", "dynamodb:PutItem"], Resource = ["arn:aws:dynamodb:eu-west-1:123456789012:table/sumu-test-history"] },
      { Sid = "ReadChannelHistory", Effect = "Allow", Action = ["dynamodb:Query"], Resource = ["arn:aws:dynamodb:eu-west-1:123456789012:table/sumu-test-history"] },
    ]
    error_message = "presence may GetItem (a channel's offset), UpdateItem/PutItem (a channel's sequence, for a first subscriber) and Query (its publications) on the history table, each its own statement."
  }
  assert {
    condition = [for role in ["authorizer", "presence", "pusher"] : join(" ", sort(distinct(flatten([
      for s in jsondecode(aws_iam_role_policy.lambda[role].policy).Statement : s.Action if anytrue([for r in s.Resource : startswith(r, "arn:aws:dynamodb:eu-west-1:123456789012:table/sumu-test-history")])
      ]))))] == [
      "",
      "dynamodb:GetItem dynamodb:PutItem dynamodb:Query dynamodb:UpdateItem",
      "dynamodb:PutItem dynamodb:UpdateItem",
    ]
    error_message = "Nothing else touches the history table or anything below its ARN (authorizer, presence, pusher): no delete, no scan, no index, and the authorizer not at all."
  }
  assert {
    condition = !anytrue([for s in jsondecode(aws_iam_role_policy.api_gateway.policy).Statement :
      anytrue([for r in s.Resource : startswith(r, "arn:aws:dynamodb:eu-west-1:123456789012:table/sumu-test-history")])
    ])
    error_message = "API Gateway's integrations never touch the history table."
  }
}

run "channel_namespaces_reach_the_pusher_and_presence" {
  command = plan

  variables {
    channel_namespaces = [
      { pattern = "room/*", history_size = 100, history_ttl_seconds = 3600, join_leave = true },
      { pattern = "feed/news", history_size = 1000, history_ttl_seconds = 604800, lifecycle_events = true, max_members = 1000 },
      { pattern = "*" },
    ]
  }

  assert {
    condition     = aws_lambda_function.this["pusher"].environment[0].variables["CHANNEL_NAMESPACES"] == "[{\"pattern\":\"room/*\",\"history_size\":100,\"history_ttl_seconds\":3600,\"join_leave\":true,\"lifecycle_events\":false,\"max_members\":100},{\"pattern\":\"feed/news\",\"history_size\":1000,\"history_ttl_seconds\":604800,\"join_leave\":false,\"lifecycle_events\":true,\"max_members\":1000},{\"pattern\":\"*\",\"history_size\":0,\"history_ttl_seconds\":0,\"join_leave\":false,\"lifecycle_events\":false,\"max_members\":100}]"
    error_message = "CHANNEL_NAMESPACES is the list as compact JSON, in order, every field present (defaults filled in), pattern first."
  }
  assert {
    condition = jsondecode(aws_lambda_function.this["pusher"].environment[0].variables["CHANNEL_NAMESPACES"]) == [
      { pattern = "room/*", history_size = 100, history_ttl_seconds = 3600, join_leave = true, lifecycle_events = false, max_members = 100 },
      { pattern = "feed/news", history_size = 1000, history_ttl_seconds = 604800, join_leave = false, lifecycle_events = true, max_members = 1000 },
      { pattern = "*", history_size = 0, history_ttl_seconds = 0, join_leave = false, lifecycle_events = false, max_members = 100 },
    ]
    error_message = "CHANNEL_NAMESPACES decodes to the normalized list (max_members 100 where omitted)."
  }
  assert {
    condition     = aws_lambda_function.this["presence"].environment[0].variables["CHANNEL_NAMESPACES"] == aws_lambda_function.this["pusher"].environment[0].variables["CHANNEL_NAMESPACES"]
    error_message = "presence gets the same CHANNEL_NAMESPACES as the pusher."
  }
  assert {
    condition     = length(aws_lambda_function.this["pusher"].environment[0].variables["CHANNEL_NAMESPACES"]) == length(jsonencode(var.channel_namespaces))
    error_message = "The environment value has exactly the length the size validation measures (jsonencode of the same list)."
  }
}
