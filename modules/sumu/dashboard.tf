# The stack's CloudWatch dashboard (docs/deploying.md § The dashboard): one page with what an
# operator asks first — how many are connected, what comes in, what goes out, what fails, how
# long the pusher and the authorizer take. var.dashboard = false opts out.
#
# The body follows the CloudWatch API Reference, "Dashboard Body Structure and Syntax": "A
# DashboardBody is a string in JSON format. It can include an array of between 0 and 500 widget
# objects ... The dashboard must include a widgets array"; a widget's x is "the horizontal
# position of the widget on the 24-column dashboard grid", and a metric widget lists its metrics
# as arrays of the namespace, the metric name and the dimension name/value pairs, e.g.
# [ "AWS/EC2", "CPUUtilization", "InstanceId", "i-012345" ], optionally ending with an object of
# rendering properties (here `stat` and `label`). Every metric names all its dimensions: a
# metric is only found under exactly the dimensions it was published with.

locals {
  # API Gateway's WebSocket metrics of this stage: "You can use the dimensions in the following
  # table to filter API Gateway metrics ... ApiId, Stage: Filters API Gateway metrics for an API
  # stage with the specified API ID and stage ID" (API Gateway Developer Guide, "Monitor
  # WebSocket API execution with CloudWatch metrics").
  dashboard_stage_dimensions = ["ApiId", aws_apigatewayv2_api.this.id, "Stage", aws_apigatewayv2_stage.this.name]

  # The EMF metrics of the Lambdas: namespace `sumu`, one dimension Service = the function's role
  # (lambdas/pusher/src/metrics.rs; the presence Lambda's gauges have the same shape).
  dashboard_sumu = {
    for group, g in {
      presence       = { service = "presence", stat = "Maximum", names = ["LiveConnections", "Subscriptions"] }
      pusher_out     = { service = "pusher", stat = "Sum", names = ["Publications", "Delivered", "Requeued", "Retried"] }
      pusher_lost    = { service = "pusher", stat = "Sum", names = ["Failed", "Stale"] }
      pusher_control = { service = "pusher", stat = "Sum", names = ["Closed", "Subscribed", "Unsubscribed"] }
    } : group => [for name in g.names : ["sumu", name, "Service", g.service, { stat = g.stat, label = name }]]
  }

  dashboard_widgets = [
    {
      # The presence Lambda's gauges, the absolute values after each stream batch: the largest
      # in a period is the value at its end or a peak within it, never a sum of reports.
      title   = "Live connections and subscriptions"
      metrics = local.dashboard_sumu["presence"]
    },
    {
      # MessageCount is "the number of messages sent to the WebSocket API, either from or to the
      # client" (same guide): client messages and the pusher's posts together.
      title = "Connections and messages (API Gateway)"
      metrics = [for name in ["ConnectCount", "MessageCount"] :
        concat(["AWS/ApiGateway", name], local.dashboard_stage_dimensions, [{ stat = "Sum", label = name }])
      ]
    },
    {
      title   = "Messages out: publications and deliveries (pusher)"
      metrics = local.dashboard_sumu["pusher_out"]
    },
    {
      # Failed: given up on (dead-lettered); Stale: the connection was gone (pruned).
      title   = "Not delivered (pusher)"
      metrics = local.dashboard_sumu["pusher_lost"]
    },
    {
      # Notification requests with an action: disconnect, subscribe, unsubscribe.
      title   = "Back-end control: closed, subscribed, unsubscribed (pusher)"
      metrics = local.dashboard_sumu["pusher_control"]
    },
    {
      # IntegrationError also counts a dropped send/publish/emit (one-way routes answer nothing:
      # README § Failure handling) and a ping of a connection already gone.
      title = "API Gateway errors"
      metrics = [for name in ["IntegrationError", "ExecutionError", "ClientError"] :
        concat(["AWS/ApiGateway", name], local.dashboard_stage_dimensions, [{ stat = "Sum", label = name }])
      ]
    },
    {
      # Lambda's own Duration of the two functions on a hot path (the authorizer inside every
      # $connect, the pusher inside every delivery), and the pusher's own measure of a batch.
      title = "Pusher and authorizer latency (ms)"
      metrics = concat(
        [for pair in setproduct(["pusher", "authorizer"], ["p50", "p99"]) :
          ["AWS/Lambda", "Duration", "FunctionName", local.function_names[pair[0]], { stat = pair[1], label = "${pair[0]} ${pair[1]}" }]
        ],
        [["sumu", "DurationMs", "Service", "pusher", { stat = "p99", label = "pusher batch p99 (DurationMs)" }]],
      )
    },
    {
      title = "Lambda errors and throttles"
      metrics = [for pair in setproduct(["authorizer", "presence", "pusher"], ["Errors", "Throttles"]) :
        ["AWS/Lambda", pair[1], "FunctionName", local.function_names[pair[0]], { stat = "Sum", label = "${pair[0]} ${pair[1]}" }]
      ]
    },
  ]
}

resource "aws_cloudwatch_dashboard" "this" {
  count = var.dashboard ? 1 : 0

  dashboard_name = var.name
  dashboard_body = jsonencode({
    widgets = [for index, widget in local.dashboard_widgets : {
      type   = "metric"
      x      = (index % 2) * 12
      y      = floor(index / 2) * 6
      width  = 12
      height = 6
      properties = {
        title   = widget.title
        region  = local.region
        view    = "timeSeries"
        stacked = false
        period  = 60
        metrics = widget.metrics
      }
    }]
  })
}
