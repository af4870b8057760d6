# The stack's CloudWatch dashboard (dashboard.tf): created by default, not with dashboard = false,
# and its body names exactly the metrics the docs promise, with this stack's API id, stage and
# function names. Mocked AWS provider. Run from modules/sumu: `terraform test`.

mock_provider "aws" {
  source = "./tests"
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

run "dashboard_by_default" {
  command = apply

  assert {
    condition     = length(aws_cloudwatch_dashboard.this) == 1 && aws_cloudwatch_dashboard.this[0].dashboard_name == "sumu-test" && output.dashboard_name == "sumu-test"
    error_message = "The dashboard exists by default, named after the stack, and is an output."
  }
  assert {
    condition = alltrue([for w in jsondecode(aws_cloudwatch_dashboard.this[0].dashboard_body).widgets :
      w.type == "metric" && w.properties.region == "eu-west-1" && w.x + w.width <= 24 && w.properties.period == 60 && length(w.properties.metrics) > 0
    ])
    error_message = "Every widget is a metric widget of the stack's region, inside the 24-column grid, with a one-minute period."
  }
  # Each metric as "namespace name dimension value …" (the last element is its rendering
  # properties): exactly these, no more, no fewer.
  assert {
    condition = toset([for m in concat([for w in jsondecode(aws_cloudwatch_dashboard.this[0].dashboard_body).widgets : w.properties.metrics]...) :
      join(" ", slice(m, 0, length(m) - 1))
      ]) == toset(concat(
      ["sumu LiveConnections Service presence", "sumu Subscriptions Service presence"],
      [for name in ["ConnectCount", "MessageCount", "IntegrationError", "ExecutionError", "ClientError"] : "AWS/ApiGateway ${name} ApiId abc123 Stage live"],
      [for name in ["Delivered", "Stale", "Failed", "Retried", "Requeued", "Publications", "Closed", "Subscribed", "Unsubscribed", "DurationMs"] : "sumu ${name} Service pusher"],
      ["AWS/Lambda Duration FunctionName sumu-test-pusher", "AWS/Lambda Duration FunctionName sumu-test-authorizer"],
      [for pair in setproduct(["Errors", "Throttles"], ["authorizer", "presence", "pusher"]) : "AWS/Lambda ${pair[0]} FunctionName sumu-test-${pair[1]}"],
    ))
    error_message = "The dashboard's metrics are exactly: presence's gauges, API Gateway's stage metrics, the pusher's EMF metrics, pusher and authorizer Duration, and every function's Errors and Throttles."
  }
  assert {
    condition = toset([for m in concat([for w in jsondecode(aws_cloudwatch_dashboard.this[0].dashboard_body).widgets : w.properties.metrics]...) :
      "${m[3]} ${m[4].stat}" if m[1] == "Duration"
    ]) == toset(["sumu-test-pusher p50", "sumu-test-pusher p99", "sumu-test-authorizer p50", "sumu-test-authorizer p99"])
    error_message = "Pusher and authorizer latency: Lambda Duration at p50 and p99 for each."
  }
  assert {
    condition = alltrue([for m in concat([for w in jsondecode(aws_cloudwatch_dashboard.this[0].dashboard_body).widgets : w.properties.metrics]...) :
      m[length(m) - 1].stat == (contains(["LiveConnections", "Subscriptions"], m[1]) ? "Maximum" : contains(["Duration", "DurationMs"], m[1]) ? m[length(m) - 1].stat : "Sum")
    ])
    error_message = "Gauges are shown at their Maximum (absolute values, never summed); counts as Sums."
  }
  assert {
    condition     = [for w in jsondecode(aws_cloudwatch_dashboard.this[0].dashboard_body).widgets : w.properties.title][0] == "Live connections and subscriptions"
    error_message = "The live gauges come first."
  }
}

run "dashboard_follows_the_stage" {
  command = apply

  variables {
    stage = "v1"
  }

  assert {
    condition = alltrue([for m in concat([for w in jsondecode(aws_cloudwatch_dashboard.this[0].dashboard_body).widgets : w.properties.metrics]...) :
      slice(m, 2, 6) == ["ApiId", "abc123", "Stage", "v1"] if m[0] == "AWS/ApiGateway"
    ])
    error_message = "API Gateway's metrics are this stage's."
  }
}

run "dashboard_opt_out" {
  command = apply

  variables {
    dashboard = false
  }

  assert {
    condition     = length(aws_cloudwatch_dashboard.this) == 0 && output.dashboard_name == null
    error_message = "dashboard = false creates no dashboard, and dashboard_name is null."
  }
}
