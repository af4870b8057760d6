# The WebSocket API, built entirely from mapping-templates/routes.json and the template files it
# names, so that it executes exactly what sumu-local executes (tests/terraform/drift_test.py).

locals {
  routes = local.route_table.routes

  # Query-protocol services (SNS, SQS) need the form content type on the integration request;
  # API Gateway sets DynamoDB's JSON protocol headers itself for an `action/` URI.
  query_protocol_content_type = "application/x-www-form-urlencoded"

  # Lambda proxy routes (e.g. `presence`); `function` names one of this module's functions.
  proxy_routes = {
    for key, route in local.routes : key => {
      function = try(route.integration.function, "presence")
    } if route.integration.type == "AWS_PROXY"
  }

  integration_responses = merge([
    for key, route in local.routes : {
      for selection, template in try(route.integration_responses, {}) :
      "${key} ${selection}" => { route = key, key = selection, template = template }
    }
  ]...)

  route_responses = { for key, route in local.routes : key => route if try(route.route_response, false) }

  stage_variables = {
    connections_table       = aws_dynamodb_table.this.name
    messages_topic_arn      = local.messages_topic_arn
    messages_queue_url      = local.messages_queue_url
    notifications_topic_arn = local.notifications_topic_arn
    notifications_queue_url = local.notifications_queue_url
    # The route keys a client may send, listed by the unknown-action frame (sumu-local derives
    # the same string from the same file).
    actions = join(",", sort([for key in keys(local.routes) : key if !startswith(key, "$")]))
  }

  # One JSON object per request. Never the query string: it carries the client's JWT.
  access_log_format = jsonencode({
    requestId          = "$context.requestId"
    extendedRequestId  = "$context.extendedRequestId"
    requestTime        = "$context.requestTimeEpoch"
    apiId              = "$context.apiId"
    stage              = "$context.stage"
    routeKey           = "$context.routeKey"
    eventType          = "$context.eventType"
    connectionId       = "$context.connectionId"
    messageId          = "$context.messageId"
    status             = "$context.status"
    sourceIp           = "$context.identity.sourceIp"
    userAgent          = "$context.identity.userAgent"
    principalId        = "$context.authorizer.principalId"
    authorizerError    = "$context.authorizer.error"
    integrationStatus  = "$context.integration.status"
    integrationLatency = "$context.integration.latency"
    integrationError   = "$context.integration.error"
    error              = "$context.error.message"
  })
}

resource "aws_apigatewayv2_api" "this" {
  name                       = var.name
  description                = "sumu WebSocket API (${var.name})"
  protocol_type              = "WEBSOCKET"
  route_selection_expression = local.route_table.route_selection_expression
  tags                       = local.tags
}

# REQUEST authorizer on $connect. Browsers cannot set headers on a WebSocket handshake, so the
# token travels in the `authorization` query parameter; without it API Gateway answers 401 itself.
resource "aws_apigatewayv2_authorizer" "this" {
  api_id           = aws_apigatewayv2_api.this.id
  name             = "${var.name}-jwt"
  authorizer_type  = "REQUEST"
  authorizer_uri   = aws_lambda_function.this["authorizer"].invoke_arn
  identity_sources = ["route.request.querystring.authorization"]
}

resource "aws_apigatewayv2_integration" "this" {
  for_each = local.routes

  api_id           = aws_apigatewayv2_api.this.id
  description      = "${each.key}: ${each.value.integration.type} ${try("${each.value.integration.service} ${each.value.integration.action}", "")}"
  integration_type = each.value.integration.type

  integration_method = contains(["AWS", "AWS_PROXY"], each.value.integration.type) ? "POST" : null
  integration_uri = (
    each.value.integration.type == "AWS" ? "arn:${local.partition}:apigateway:${local.region}:${each.value.integration.service}:action/${each.value.integration.action}" :
    each.value.integration.type == "AWS_PROXY" ? aws_lambda_function.this[local.proxy_routes[each.key].function].invoke_arn :
    null
  )
  credentials_arn = each.value.integration.type == "AWS" ? aws_iam_role.api_gateway.arn : null

  request_parameters = try(each.value.integration.content_type, null) == local.query_protocol_content_type ? {
    "integration.request.header.Content-Type" = "'${local.query_protocol_content_type}'"
  } : null

  # One template per route, always applied; a request no template matches is refused, never passed
  # through to the service as is.
  template_selection_expression = try(each.value.integration.request_template, null) == null ? null : "\\$default"
  request_templates = try(each.value.integration.request_template, null) == null ? null : {
    "$default" = file("${local.templates_dir}/${each.value.integration.request_template}")
  }
  passthrough_behavior = each.value.integration.type == "AWS_PROXY" ? null : "NEVER"
  timeout_milliseconds = var.limits.integration_timeout_ms
}

resource "aws_apigatewayv2_integration_response" "this" {
  for_each = local.integration_responses

  api_id                        = aws_apigatewayv2_api.this.id
  integration_id                = aws_apigatewayv2_integration.this[each.value.route].id
  integration_response_key      = each.value.key
  template_selection_expression = each.value.template == null ? null : "\\$default"
  # A null template: the route sends nothing back, but AWS still needs the integration response.
  response_templates = each.value.template == null ? null : {
    "$default" = file("${local.templates_dir}/${each.value.template}")
  }
}

resource "aws_apigatewayv2_route" "this" {
  for_each = local.routes

  #checkov:skip=CKV_AWS_309:WebSocket APIs authorize only on $connect; every later route runs on the connection the authorizer admitted (its principalId travels with it), so NONE is the only valid value there.

  api_id    = aws_apigatewayv2_api.this.id
  route_key = each.key
  target    = "integrations/${aws_apigatewayv2_integration.this[each.key].id}"

  authorization_type = try(each.value.authorizer, false) ? "CUSTOM" : "NONE"
  authorizer_id      = try(each.value.authorizer, false) ? aws_apigatewayv2_authorizer.this.id : null

  route_response_selection_expression = try(each.value.route_response, false) ? "$default" : null
}

resource "aws_apigatewayv2_route_response" "this" {
  for_each = local.route_responses

  api_id             = aws_apigatewayv2_api.this.id
  route_id           = aws_apigatewayv2_route.this[each.key].id
  route_response_key = "$default"
}

resource "aws_cloudwatch_log_group" "access" {
  #checkov:skip=CKV_AWS_338:Retention is the log_retention_days input (default 30 days, a cost/benefit choice for per-request logs); set 365 or more where policy requires it.
  name              = "/aws/apigateway/${var.name}/${var.stage}/access"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
  tags              = local.tags
}

# The stage's execution log (stage_logging_level). Left to API Gateway, the group would appear on
# the first logged request, without retention or encryption, and outlive the stack. "When you
# enable execution logging on a stage, API Gateway automatically creates and manages a CloudWatch
# Logs log group. The log group is named API-Gateway-Execution-Logs_{rest-api-id}/{stage_name}"
# (API Gateway Developer Guide, "Execution logging for REST APIs"; WebSocket stages log under the
# same name with the WebSocket API's id). Created here first, API Gateway writes into it.
resource "aws_cloudwatch_log_group" "execution" {
  #checkov:skip=CKV_AWS_338:Retention is the log_retention_days input (default 30 days, a cost/benefit choice for per-request logs); set 365 or more where policy requires it.
  name              = "API-Gateway-Execution-Logs_${aws_apigatewayv2_api.this.id}/${var.stage}"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
  tags              = local.tags
}

resource "aws_apigatewayv2_stage" "this" {
  #checkov:skip=CKV2_AWS_51:Client certificates (mutual TLS) are not available for WebSocket APIs; clients authenticate with a JWT checked by the $connect authorizer.
  api_id      = aws_apigatewayv2_api.this.id
  name        = var.stage
  description = "sumu stage ${var.stage}"
  auto_deploy = true

  # Every table/topic/queue identifier the templates use (routes.json `stage_variables`).
  stage_variables = local.stage_variables

  default_route_settings {
    throttling_burst_limit   = var.limits.throttling_burst_limit
    throttling_rate_limit    = var.limits.throttling_rate_limit
    logging_level            = var.stage_logging_level
    data_trace_enabled       = false # full request logging would write tokens and message bodies
    detailed_metrics_enabled = true
  }

  access_log_settings {
    destination_arn = aws_cloudwatch_log_group.access.arn
    format          = local.access_log_format
  }

  tags = local.tags

  # Routes must exist before the automatic deployment of the stage; the execution log group
  # before the first request API Gateway logs (it would create the group itself otherwise).
  depends_on = [
    aws_apigatewayv2_route.this, aws_apigatewayv2_integration_response.this, aws_apigatewayv2_route_response.this,
    aws_cloudwatch_log_group.execution,
  ]

  lifecycle {
    precondition {
      condition     = toset(keys(local.stage_variables)) == toset(local.route_table.stage_variables)
      error_message = "mapping-templates/routes.json names stage variables ${jsonencode(local.route_table.stage_variables)}, but the stage sets ${jsonencode(keys(local.stage_variables))}."
    }
  }
}
