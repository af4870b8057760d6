# One plan-mode test per validation rule of variables.tf: each run breaks exactly one rule and
# expects exactly that variable to fail. Run from modules/sumu: `terraform test`.

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

run "valid_defaults_plan" {
  command = plan
}

run "name_with_invalid_characters" {
  command = plan

  variables {
    name = "sumu_test!"
  }

  expect_failures = [var.name]
}

run "stage_default_is_not_a_stage_name" {
  command = plan

  variables {
    stage = "$default"
  }

  expect_failures = [var.stage]
}

run "no_issuer" {
  command = plan

  variables {
    issuers = []
  }

  expect_failures = [var.issuers]
}

run "issuer_without_audience" {
  command = plan

  variables {
    issuers = [{ issuer = "https://i.example.com/", jwks_uri = "https://i.example.com/jwks.json", audiences = [] }]
  }

  expect_failures = [var.issuers]
}

run "issuer_with_empty_audience" {
  command = plan

  variables {
    issuers = [{ issuer = "https://i.example.com/", jwks_uri = "https://i.example.com/jwks.json", audiences = [""] }]
  }

  expect_failures = [var.issuers]
}

run "jwks_over_plain_http" {
  command = plan

  variables {
    issuers = [{ issuer = "https://i.example.com/", jwks_uri = "http://i.example.com/jwks.json", audiences = ["app"] }]
  }

  expect_failures = [var.issuers]
}

run "authorizer_environment_overrides_issuers" {
  command = plan

  variables {
    authorizer_environment = { JWT_ISSUERS = "[]" }
  }

  expect_failures = [var.authorizer_environment]
}

run "unknown_presence_destination" {
  command = plan

  variables {
    presence_destination = "sns"
  }

  expect_failures = [var.presence_destination]
}

run "invalid_table_name" {
  command = plan

  variables {
    table_name = "a"
  }

  expect_failures = [var.table_name]
}

run "own_messages_topic_without_arn" {
  command = plan

  variables {
    create_messages_topic = false
  }

  expect_failures = [var.messages_topic_arn]
}

run "messages_topic_arn_while_creating_one" {
  command = plan

  variables {
    messages_topic_arn = "arn:aws:sns:eu-west-1:123456789012:t"
  }

  expect_failures = [var.messages_topic_arn]
}

run "messages_topic_arn_not_an_sns_arn" {
  command = plan

  variables {
    create_messages_topic = false
    messages_topic_arn    = "arn:aws:sqs:eu-west-1:123456789012:t"
  }

  expect_failures = [var.messages_topic_arn]
}

run "own_messages_queue_without_queue" {
  command = plan

  variables {
    create_messages_queue = false
  }

  expect_failures = [var.messages_queue]
}

run "own_notifications_topic_without_arn" {
  command = plan

  variables {
    create_notifications_topic = false
  }

  expect_failures = [var.notifications_topic_arn]
}

run "notifications_queue_while_creating_one" {
  command = plan

  variables {
    notifications_queue = { arn = "arn:aws:sqs:eu-west-1:123456789012:q", url = "https://sqs.eu-west-1.amazonaws.com/123456789012/q" }
  }

  expect_failures = [var.notifications_queue]
}

run "lambda_memory_out_of_range" {
  command = plan

  variables {
    lambda_settings = { pusher_memory_size = 64 }
  }

  expect_failures = [var.lambda_settings]
}

run "authorizer_timeout_beyond_api_gateway" {
  command = plan

  variables {
    lambda_settings = { authorizer_timeout = 30 }
  }

  expect_failures = [var.lambda_settings]
}

run "unknown_log_level" {
  command = plan

  variables {
    lambda_log_level = "VERBOSE"
  }

  expect_failures = [var.lambda_log_level]
}

run "zero_throttling_rate" {
  command = plan

  variables {
    limits = { throttling_rate_limit = 0 }
  }

  expect_failures = [var.limits]
}

run "integration_timeout_beyond_29s" {
  command = plan

  variables {
    limits = { integration_timeout_ms = 30000 }
  }

  expect_failures = [var.limits]
}

run "presence_batch_too_large" {
  command = plan

  variables {
    limits = { presence_batch_size = 20000 }
  }

  expect_failures = [var.limits]
}

run "pusher_concurrency_below_two" {
  command = plan

  variables {
    limits = { pusher_max_concurrency = 1 }
  }

  expect_failures = [var.limits]
}

run "negative_pusher_shard_threshold" {
  command = plan

  variables {
    limits = { pusher_shard_threshold = -1 }
  }

  expect_failures = [var.limits]
}

run "fractional_pusher_shard_threshold" {
  command = plan

  variables {
    limits = { pusher_shard_threshold = 2.5 }
  }

  expect_failures = [var.limits]
}

run "pusher_environment_sets_the_shard_threshold" {
  command = plan

  variables {
    pusher_environment = { PUSHER_SHARD_THRESHOLD = "5" }
  }

  expect_failures = [var.pusher_environment]
}

run "zero_max_receive_count" {
  command = plan

  variables {
    limits = { queue_max_receive_count = 0 }
  }

  expect_failures = [var.limits]
}

run "unknown_stage_logging_level" {
  command = plan

  variables {
    stage_logging_level = "DEBUG"
  }

  expect_failures = [var.stage_logging_level]
}

run "unsupported_retention" {
  command = plan

  variables {
    log_retention_days = 10
  }

  expect_failures = [var.log_retention_days]
}

run "kms_key_alias_instead_of_arn" {
  command = plan

  variables {
    kms_key_arn = "alias/aws/sns"
  }

  expect_failures = [var.kms_key_arn]
}

run "presence_environment_overrides_module_settings" {
  command = plan

  variables {
    presence_environment = { CONNECTIONS_TABLE = "other" }
  }

  expect_failures = [var.presence_environment]
}

run "pusher_environment_overrides_module_settings" {
  command = plan

  variables {
    pusher_environment = { MANAGEMENT_ENDPOINT = "https://elsewhere.example.com/live" }
  }

  expect_failures = [var.pusher_environment]
}

run "channels_empty_grants_claim" {
  command = plan
  variables {
    channels = { grants_claim = " " }
  }
  expect_failures = [var.channels]
}

run "channels_static_grant_not_a_pattern" {
  command = plan
  variables {
    channels = { static_subscribe = ["room/**"] }
  }
  expect_failures = [var.channels]
}

run "channels_cap_out_of_range" {
  command = plan
  variables {
    channels = { max_subscriptions_per_connection = 0 }
  }
  expect_failures = [var.channels]
}

run "authorizer_environment_overrides_grants" {
  command = plan
  variables {
    authorizer_environment = { JWT_GRANTS_CLAIM = "mine" }
  }
  expect_failures = [var.authorizer_environment]
}

# channel_namespaces: a valid list (every field, the limits, every allowed character), then one
# run per rule, each breaking only that rule (its error message names the offending pattern).
run "channel_namespaces_valid_list" {
  command = plan
  variables {
    channel_namespaces = [
      { pattern = "room/*", history_size = 100, history_ttl_seconds = 3600, join_leave = true },
      { pattern = "a/b/c/d/*", history_size = 1000, history_ttl_seconds = 604800 },
      { pattern = "a/b/c/d/e", history_size = 1, history_ttl_seconds = 1, lifecycle_events = true },
      { pattern = "user:alice@example.com|x=1+2/_-.", history_size = 0, history_ttl_seconds = 604800 },
      { pattern = "*" },
    ]
  }
}

run "channel_namespaces_double_wildcard" {
  command = plan
  variables {
    channel_namespaces = [{ pattern = "room/**" }]
  }
  expect_failures = [var.channel_namespaces]
}

run "channel_namespaces_prefix_too_deep" {
  command = plan
  variables {
    channel_namespaces = [{ pattern = "a/b/c/d/e/f/*" }]
  }
  expect_failures = [var.channel_namespaces]
}

run "channel_namespaces_five_segment_prefix_matches_nothing" {
  command = plan
  variables {
    channel_namespaces = [{ pattern = "a/b/c/d/e/*" }]
  }
  expect_failures = [var.channel_namespaces]
}

run "channel_namespaces_six_segments" {
  command = plan
  variables {
    channel_namespaces = [{ pattern = "a/b/c/d/e/f" }]
  }
  expect_failures = [var.channel_namespaces]
}

run "channel_namespaces_sub_placeholder" {
  command = plan
  variables {
    channel_namespaces = [{ pattern = "user/{sub}" }]
  }
  expect_failures = [var.channel_namespaces]
}

run "channel_namespaces_wildcard_inside" {
  command = plan
  variables {
    channel_namespaces = [{ pattern = "room/*/chat" }]
  }
  expect_failures = [var.channel_namespaces]
}

run "channel_namespaces_empty_segment" {
  command = plan
  variables {
    channel_namespaces = [{ pattern = "room//42" }]
  }
  expect_failures = [var.channel_namespaces]
}

run "channel_namespaces_empty_pattern" {
  command = plan
  variables {
    channel_namespaces = [{ pattern = "" }]
  }
  expect_failures = [var.channel_namespaces]
}

run "channel_namespaces_space_in_pattern" {
  command = plan
  variables {
    channel_namespaces = [{ pattern = "room 42" }]
  }
  expect_failures = [var.channel_namespaces]
}

run "channel_namespaces_segment_of_65_characters" {
  command = plan
  variables {
    channel_namespaces = [{ pattern = "room/${join("", [for i in range(65) : "x"])}" }]
  }
  expect_failures = [var.channel_namespaces]
}

# Five segments of 64 characters match the pattern syntax but are 324 bytes.
run "channel_namespaces_pattern_over_256_bytes" {
  command = plan
  variables {
    channel_namespaces = [{ pattern = join("/", [for s in range(5) : join("", [for i in range(64) : "x"])]) }]
  }
  expect_failures = [var.channel_namespaces]
}

run "channel_namespaces_history_size_over_1000" {
  command = plan
  variables {
    channel_namespaces = [{ pattern = "room/*", history_size = 1001, history_ttl_seconds = 60 }]
  }
  expect_failures = [var.channel_namespaces]
}

run "channel_namespaces_negative_history_size" {
  command = plan
  variables {
    channel_namespaces = [{ pattern = "room/*", history_size = -1, history_ttl_seconds = 60 }]
  }
  expect_failures = [var.channel_namespaces]
}

run "channel_namespaces_fractional_history_size" {
  command = plan
  variables {
    channel_namespaces = [{ pattern = "room/*", history_size = 1.5, history_ttl_seconds = 60 }]
  }
  expect_failures = [var.channel_namespaces]
}

run "channel_namespaces_history_without_ttl" {
  command = plan
  variables {
    channel_namespaces = [{ pattern = "room/*", history_size = 10, history_ttl_seconds = 0 }]
  }
  expect_failures = [var.channel_namespaces]
}

run "channel_namespaces_history_with_default_ttl" {
  command = plan
  variables {
    channel_namespaces = [{ pattern = "room/*", history_size = 10 }]
  }
  expect_failures = [var.channel_namespaces]
}

run "channel_namespaces_ttl_over_7_days" {
  command = plan
  variables {
    channel_namespaces = [{ pattern = "room/*", history_size = 10, history_ttl_seconds = 604801 }]
  }
  expect_failures = [var.channel_namespaces]
}

run "channel_namespaces_negative_ttl" {
  command = plan
  variables {
    channel_namespaces = [{ pattern = "room/*", history_ttl_seconds = -1 }]
  }
  expect_failures = [var.channel_namespaces]
}

run "channel_namespaces_fractional_ttl" {
  command = plan
  variables {
    channel_namespaces = [{ pattern = "room/*", history_ttl_seconds = 0.5 }]
  }
  expect_failures = [var.channel_namespaces]
}

run "channel_namespaces_max_members_bounds_accepted" {
  command = plan
  variables {
    channel_namespaces = [{ pattern = "room/*", join_leave = true, max_members = 1 }, { pattern = "big/*", lifecycle_events = true, max_members = 1000 }]
  }
}

run "channel_namespaces_max_members_zero" {
  command = plan
  variables {
    channel_namespaces = [{ pattern = "room/*", join_leave = true, max_members = 0 }]
  }
  expect_failures = [var.channel_namespaces]
}

run "channel_namespaces_max_members_over_1000" {
  command = plan
  variables {
    channel_namespaces = [{ pattern = "room/*", join_leave = true, max_members = 1001 }]
  }
  expect_failures = [var.channel_namespaces]
}

run "channel_namespaces_fractional_max_members" {
  command = plan
  variables {
    channel_namespaces = [{ pattern = "room/*", lifecycle_events = true, max_members = 10.5 }]
  }
  expect_failures = [var.channel_namespaces]
}

# An explicit null is an omitted attribute to Terraform (optional() fills in its default): 100.
run "channel_namespaces_null_max_members_is_the_default" {
  command = plan
  variables {
    channel_namespaces = [{ pattern = "room/*", join_leave = true, max_members = null }]
  }
  assert {
    condition     = jsondecode(aws_lambda_function.this["presence"].environment[0].variables["CHANNEL_NAMESPACES"])[0].max_members == 100
    error_message = "max_members = null means the default, 100."
  }
}

run "channel_namespaces_sixteen_is_the_most" {
  command = plan
  variables {
    channel_namespaces = [for i in range(16) : { pattern = "ns${i}/*", history_size = 10, history_ttl_seconds = 60 }]
  }
}

run "channel_namespaces_seventeen" {
  command = plan
  variables {
    channel_namespaces = [for i in range(17) : { pattern = "ns${i}/*" }]
  }
  expect_failures = [var.channel_namespaces]
}

# 10 namespaces of 200-byte patterns: each valid, within the count, but about 3 KB of JSON.
run "channel_namespaces_json_over_2048_bytes" {
  command = plan
  variables {
    channel_namespaces = [for i in range(10) : { pattern = "${i}${join("", [for c in range(63) : "x"])}/${join("", [for c in range(64) : "y"])}/${join("", [for c in range(64) : "z"])}/*" }]
  }
  expect_failures = [var.channel_namespaces]
}

run "channel_namespaces_null_pattern" {
  command = plan
  variables {
    channel_namespaces = [{ pattern = null }]
  }
  expect_failures = [var.channel_namespaces]
}

run "presence_environment_sets_channel_namespaces" {
  command = plan
  variables {
    presence_environment = { CHANNEL_NAMESPACES = "[]" }
  }
  expect_failures = [var.presence_environment]
}

run "presence_environment_sets_members_table" {
  command = plan
  variables {
    presence_environment = { MEMBERS_TABLE = "other" }
  }
  expect_failures = [var.presence_environment]
}

run "presence_environment_sets_notifications_queue" {
  command = plan
  variables {
    presence_environment = { NOTIFICATIONS_QUEUE_URL = "https://sqs.eu-west-1.amazonaws.com/123456789012/other" }
  }
  expect_failures = [var.presence_environment]
}

run "pusher_environment_sets_history_table" {
  command = plan
  variables {
    pusher_environment = { HISTORY_TABLE = "other" }
  }
  expect_failures = [var.pusher_environment]
}
