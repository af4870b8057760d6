# Channel presence's resources (docs/presence.md): the members table, the subscriptions stream and
# its mapping to the presence Lambda, the new environment, and each new IAM statement on exactly
# its resource. Mocked AWS provider. Run from modules/sumu: `terraform test`.

mock_provider "aws" {
  source = "./tests"
}

# Their own ARNs, so statements on each table and stream can be told apart (the mock gives every
# table the same ones).
override_resource {
  target = aws_dynamodb_table.subscriptions
  values = {
    arn        = "arn:aws:dynamodb:eu-west-1:123456789012:table/sumu-test-subscriptions"
    stream_arn = "arn:aws:dynamodb:eu-west-1:123456789012:table/sumu-test-subscriptions/stream/2024-01-01T00:00:00.000"
  }
}

override_resource {
  target = aws_dynamodb_table.history
  values = {
    arn = "arn:aws:dynamodb:eu-west-1:123456789012:table/sumu-test-history"
  }
}

override_resource {
  target = aws_dynamodb_table.members
  values = {
    arn = "arn:aws:dynamodb:eu-west-1:123456789012:table/sumu-test-members"
  }
}

override_resource {
  target = aws_sqs_queue.notifications
  values = {
    arn = "arn:aws:sqs:eu-west-1:123456789012:sumu-test-notifications"
    url = "https://sqs.eu-west-1.amazonaws.com/123456789012/sumu-test-notifications"
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

run "members_table" {
  command = apply

  assert {
    condition = (
      aws_dynamodb_table.members.name == "sumu-test-members"
      && aws_dynamodb_table.members.hash_key == "channel" && aws_dynamodb_table.members.range_key == "user_id"
      && aws_dynamodb_table.members.billing_mode == "PAY_PER_REQUEST"
    )
    error_message = "Members are keyed by (channel, user_id), on demand, named {name}-members."
  }
  assert {
    condition     = toset([for a in aws_dynamodb_table.members.attribute : "${a.name}:${a.type}"]) == toset(["channel:S", "user_id:S"])
    error_message = "Only the key attributes are declared, both strings."
  }
  assert {
    condition     = aws_dynamodb_table.members.ttl[0].attribute_name == "expires_at" && aws_dynamodb_table.members.ttl[0].enabled
    error_message = "TTL collects member and channel items on expires_at."
  }
  assert {
    condition     = length(aws_dynamodb_table.members.global_secondary_index) == 0 && length(aws_dynamodb_table.members.local_secondary_index) == 0 && !coalesce(aws_dynamodb_table.members.stream_enabled, false)
    error_message = "The members table has no index and no stream: every read is by key, nobody consumes its changes."
  }
  assert {
    condition = (
      aws_dynamodb_table.members.point_in_time_recovery[0].enabled == aws_dynamodb_table.history.point_in_time_recovery[0].enabled
      && aws_dynamodb_table.members.point_in_time_recovery[0].enabled
      && aws_dynamodb_table.members.server_side_encryption[0].enabled
      && aws_dynamodb_table.members.deletion_protection_enabled == aws_dynamodb_table.history.deletion_protection_enabled
    )
    error_message = "Point-in-time recovery, encryption and deletion protection as the history table's (run members_table_uses_the_stack_key checks the key)."
  }
  assert {
    condition     = aws_dynamodb_table.members.tags == tomap({ "sumu:stack" = "sumu-test" })
    error_message = "The members table carries the stack's tags."
  }
  assert {
    condition     = output.members_table_name == "sumu-test-members" && output.members_table_arn == "arn:aws:dynamodb:eu-west-1:123456789012:table/sumu-test-members"
    error_message = "The members table's name and ARN are outputs."
  }
}

run "subscriptions_stream_feeds_presence" {
  command = apply

  assert {
    condition     = aws_dynamodb_table.subscriptions.stream_enabled && aws_dynamodb_table.subscriptions.stream_view_type == "NEW_AND_OLD_IMAGES"
    error_message = "The subscriptions table streams new and old images (a REMOVE record must carry the user_id)."
  }
  assert {
    condition     = output.subscriptions_stream_arn == "arn:aws:dynamodb:eu-west-1:123456789012:table/sumu-test-subscriptions/stream/2024-01-01T00:00:00.000"
    error_message = "The subscriptions stream's ARN is an output."
  }
  assert {
    condition = (
      aws_lambda_event_source_mapping.presence_streams["subscriptions"].event_source_arn == aws_dynamodb_table.subscriptions.stream_arn
      && aws_lambda_event_source_mapping.presence_streams["subscriptions"].function_name == aws_lambda_function.this["presence"].arn
      && aws_lambda_event_source_mapping.presence_streams["subscriptions"].starting_position == "LATEST"
      && aws_lambda_event_source_mapping.presence_streams["subscriptions"].destination_config[0].on_failure[0].destination_arn == aws_sqs_queue.presence_failures.arn
    )
    error_message = "subscriptions stream → presence, from LATEST, failed batches recorded in the presence failures queue."
  }
  # Every setting the connections stream's mapping has, the subscriptions stream's has too.
  assert {
    condition = [for m in [aws_lambda_event_source_mapping.presence_streams["connections"], aws_lambda_event_source_mapping.presence_streams["subscriptions"]] : [
      m.function_name, m.starting_position, m.batch_size, m.bisect_batch_on_function_error, m.maximum_retry_attempts,
      m.function_response_types, m.destination_config[0].on_failure[0].destination_arn,
      jsondecode(one(m.filter_criteria[0].filter).pattern),
      ]] == [for i in range(2) : [
      aws_lambda_function.this["presence"].arn, "LATEST", 100, true, 5, toset(["ReportBatchItemFailures"]), aws_sqs_queue.presence_failures.arn,
      { eventName = ["INSERT", "REMOVE"] },
    ]]
    error_message = "Both stream mappings: batch size, bisect, retries, per-record failures, on-failure destination and the INSERT/REMOVE filter alike."
  }
}

run "stream_mappings_follow_the_limits" {
  command = plan

  variables {
    limits = { presence_batch_size = 25, presence_max_retry_attempts = 2 }
  }

  assert {
    condition = (
      aws_lambda_event_source_mapping.presence_streams["subscriptions"].batch_size == 25
      && aws_lambda_event_source_mapping.presence_streams["subscriptions"].maximum_retry_attempts == 2
    )
    error_message = "limits.presence_batch_size and presence_max_retry_attempts apply to the subscriptions stream too."
  }
}

run "emulator_stack_has_no_subscriptions_stream_mapping" {
  command = plan

  variables {
    attach_event_sources = false
  }

  assert {
    condition     = length(aws_lambda_event_source_mapping.presence_streams) == 0 && aws_dynamodb_table.subscriptions.stream_enabled
    error_message = "With attach_event_sources = false nothing consumes the subscriptions stream (sumu-local does), and the stream stays on."
  }
}

run "presence_environment" {
  command = apply

  assert {
    condition = (
      aws_lambda_function.this["presence"].environment[0].variables["MEMBERS_TABLE"] == "sumu-test-members"
      && aws_lambda_function.this["presence"].environment[0].variables["NOTIFICATIONS_QUEUE_URL"] == "https://sqs.eu-west-1.amazonaws.com/123456789012/sumu-test-notifications"
    )
    error_message = "presence gets MEMBERS_TABLE and the notifications queue's URL (where join/leave frames go)."
  }
  assert {
    condition = [for fn in ["authorizer", "pusher"] :
      contains(keys(aws_lambda_function.this[fn].environment[0].variables), "MEMBERS_TABLE")
    ] == [false, false]
    error_message = "Only presence gets MEMBERS_TABLE."
  }
}

run "presence_environment_follows_a_brought_notifications_queue" {
  command = plan

  variables {
    create_notifications_queue = false
    notifications_queue = {
      arn = "arn:aws:sqs:eu-west-1:123456789012:existing-notifications"
      url = "https://sqs.eu-west-1.amazonaws.com/123456789012/existing-notifications"
    }
  }

  assert {
    condition     = aws_lambda_function.this["presence"].environment[0].variables["NOTIFICATIONS_QUEUE_URL"] == "https://sqs.eu-west-1.amazonaws.com/123456789012/existing-notifications"
    error_message = "join/leave frames go to whichever notifications queue the stack uses."
  }
  assert {
    condition     = one([for s in jsondecode(aws_iam_role_policy.lambda["presence"].policy).Statement : s.Resource if s.Sid == "SendJoinLeaveFrames"]) == ["arn:aws:sqs:eu-west-1:123456789012:existing-notifications"]
    error_message = "presence may send to the brought notifications queue."
  }
}

run "presence_iam" {
  command = apply

  assert {
    condition = [for s in jsondecode(aws_iam_role_policy.lambda["presence"].policy).Statement : s if contains(["ReadSubscriptionsStream", "AnswerChannelPresence", "TrackChannelMembers", "SendJoinLeaveFrames"], s.Sid)] == [
      { Sid = "ReadSubscriptionsStream", Effect = "Allow", Action = ["dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator"], Resource = ["arn:aws:dynamodb:eu-west-1:123456789012:table/sumu-test-subscriptions/stream/2024-01-01T00:00:00.000"] },
      { Sid = "AnswerChannelPresence", Effect = "Allow", Action = ["dynamodb:Query"], Resource = ["arn:aws:dynamodb:eu-west-1:123456789012:table/sumu-test-subscriptions"] },
      { Sid = "TrackChannelMembers", Effect = "Allow", Action = ["dynamodb:GetItem", "dynamodb:UpdateItem"], Resource = ["arn:aws:dynamodb:eu-west-1:123456789012:table/sumu-test-members"] },
      { Sid = "SendJoinLeaveFrames", Effect = "Allow", Action = ["sqs:SendMessage"], Resource = ["arn:aws:sqs:eu-west-1:123456789012:sumu-test-notifications"] },
    ]
    error_message = "presence: stream reads on the subscriptions stream, Query on the subscriptions table, GetItem/UpdateItem on the members table, SendMessage on the notifications queue, each its own statement."
  }
  assert {
    condition     = one([for s in jsondecode(aws_iam_role_policy.lambda["presence"].policy).Statement : s if s.Sid == "ListTableStreams"]) == { Sid = "ListTableStreams", Effect = "Allow", Action = ["dynamodb:ListStreams"], Resource = ["*"] }
    error_message = "ListStreams (no resource-level permissions) stays one statement for both streams."
  }
  assert {
    condition = anytrue([for s in jsondecode(aws_iam_role_policy.lambda["presence"].policy).Statement :
      s.Action == ["dynamodb:Query"] && s.Resource == ["arn:aws:dynamodb:eu-west-1:123456789012:table/sumu-test-subscriptions/index/connection_id-index"]
    ])
    error_message = "The GSI statement (a connection's subscriptions) stays."
  }
  # Nothing else anywhere touches the members table: only presence, only these two actions.
  assert {
    condition = [for role in ["authorizer", "presence", "pusher"] : join(" ", sort(distinct(flatten([
      for s in jsondecode(aws_iam_role_policy.lambda[role].policy).Statement : s.Action if anytrue([for r in s.Resource : startswith(r, "arn:aws:dynamodb:eu-west-1:123456789012:table/sumu-test-members")])
    ]))))] == ["", "dynamodb:GetItem dynamodb:UpdateItem", ""]
    error_message = "Only presence touches the members table (GetItem, UpdateItem): no delete, no query, no scan."
  }
  assert {
    condition = !anytrue([for s in jsondecode(aws_iam_role_policy.api_gateway.policy).Statement :
      anytrue([for r in s.Resource : startswith(r, "arn:aws:dynamodb:eu-west-1:123456789012:table/sumu-test-members")])
    ])
    error_message = "API Gateway's integrations never touch the members table."
  }
  assert {
    condition = !anytrue([for s in jsondecode(aws_iam_role_policy.lambda["pusher"].policy).Statement :
      contains(s.Resource, aws_dynamodb_table.subscriptions.stream_arn)
    ])
    error_message = "Only presence reads the subscriptions stream."
  }
}

run "pusher_iam_for_back_end_control" {
  command = apply

  assert {
    condition = [for s in jsondecode(aws_iam_role_policy.lambda["pusher"].policy).Statement : s if contains(["SubscribeConnectionsOnRequest", "FreeSubscriptionSlotOnRequest"], s.Sid)] == [
      { Sid = "SubscribeConnectionsOnRequest", Effect = "Allow", Action = ["dynamodb:PutItem"], Resource = ["arn:aws:dynamodb:eu-west-1:123456789012:table/sumu-test-subscriptions"] },
      { Sid = "FreeSubscriptionSlotOnRequest", Effect = "Allow", Action = ["dynamodb:UpdateItem"], Resource = [aws_dynamodb_table.this.arn] },
    ]
    error_message = "pusher: PutItem on the subscriptions table (subscribe), UpdateItem on the connections table (the counter an unsubscribe frees), each its own statement."
  }
  assert {
    condition = join(" ", sort(distinct(flatten([for s in jsondecode(aws_iam_role_policy.lambda["pusher"].policy).Statement :
      s.Action if contains(s.Resource, "arn:aws:dynamodb:eu-west-1:123456789012:table/sumu-test-subscriptions")
    ])))) == "dynamodb:BatchWriteItem dynamodb:DeleteItem dynamodb:PutItem dynamodb:Query"
    error_message = "On the subscriptions table the pusher may Query, PutItem, DeleteItem and BatchWriteItem: never Scan, never UpdateItem."
  }
  assert {
    condition = one([for s in jsondecode(aws_iam_role_policy.lambda["pusher"].policy).Statement : s.Resource if s.Sid == "ManageConnections"]) == [
      for method in ["POST", "GET", "DELETE"] : "arn:aws:execute-api:eu-west-1:123456789012:abc123/live/${method}/@connections/*"
    ]
    error_message = "disconnect closes with the management API's DELETE, already granted on this stage only."
  }
}

run "members_table_uses_the_stack_key" {
  command = apply

  variables {
    kms_key_arn = "arn:aws:kms:eu-west-1:123456789012:key/11111111-2222-3333-4444-555555555555"
  }

  assert {
    condition     = aws_dynamodb_table.members.server_side_encryption[0].kms_key_arn == var.kms_key_arn
    error_message = "The key encrypts the members table like the other tables."
  }
  assert {
    condition = one([for s in jsondecode(aws_iam_role_policy.lambda["presence"].policy).Statement : s if s.Sid == "UseStackKeyThroughDynamoDB"]) == {
      Sid       = "UseStackKeyThroughDynamoDB", Effect = "Allow", Action = ["kms:Decrypt", "kms:DescribeKey"], Resource = [var.kms_key_arn]
      Condition = { StringEquals = { "kms:ViaService" = "dynamodb.eu-west-1.amazonaws.com" } }
    }
    error_message = "presence reads and writes the members table through DynamoDB with the stack key."
  }
  assert {
    condition = toset([for s in jsondecode(aws_iam_role_policy.lambda["presence"].policy).Statement : s.Sid if anytrue([for a in s.Action : startswith(a, "kms:")])]) == toset([
      "UseStackKeyThroughDynamoDB", "DecryptTableStream", "EncryptForEncryptedQueues", "EncryptForEncryptedTopics",
    ])
    error_message = "No new KMS statement: the tables', streams' and queues' statements cover the members table, the subscriptions stream and the notifications queue."
  }
}
