# Least privilege: one role per function and one for API Gateway's service integrations, one
# statement per need, every resource named by its ARN. The only "*" resources are those of actions
# with no resource-level permissions (X-Ray's, dynamodb:ListStreams). Policies are plain jsonencode() so that `terraform test` can
# check their content (a mocked aws_iam_policy_document would return nothing real).

locals {
  table_arn               = aws_dynamodb_table.this.arn
  subscriptions_table_arn = aws_dynamodb_table.subscriptions.arn
  history_table_arn       = aws_dynamodb_table.history.arn
  members_table_arn       = aws_dynamodb_table.members.arn

  # With kms_key_arn, each role may use the key only for what it does with encrypted data, and
  # (where AWS shows the condition) only through the service that holds that data: kms:ViaService
  # "limits use of a KMS key to requests from specified AWS services" (AWS KMS Developer Guide,
  # "kms:ViaService"). CloudWatch Logs and SNS delivering to an encrypted queue act as their own
  # service principals, so they need the key's policy instead: see output kms_key_policy_statements.
  kms_via_service = { for service in ["dynamodb", "sns", "sqs"] : service => "${service}.${local.region}.${data.aws_partition.current.dns_suffix}" }

  kms_statements = {
    # AWS KMS Developer Guide, "How Amazon DynamoDB uses AWS KMS": DynamoDB protects each table
    # with a table key that it decrypts with the KMS key ("kms:Decrypt") and checks the key with
    # "kms:DescribeKey"; the example key policy lets principals use the key "through Amazon
    # DynamoDB" with the condition kms:ViaService = dynamodb.<region>.amazonaws.com. Reads and
    # writes of items use the table key, so no principal here needs Encrypt or GenerateDataKey.
    tables = {
      Sid       = "UseStackKeyThroughDynamoDB"
      Effect    = "Allow"
      Action    = ["kms:Decrypt", "kms:DescribeKey"]
      Resource  = [var.kms_key_arn]
      Condition = { StringEquals = { "kms:ViaService" = local.kms_via_service["dynamodb"] } }
    }
    # DynamoDB developer guide, "Usage notes": "DynamoDB Streams is always encrypted with a
    # table-level encryption key". AWS shows no kms:ViaService value for the streams endpoint, so
    # this statement (presence's GetRecords) carries none rather than a guess that could deny it.
    table_stream = {
      Sid      = "DecryptTableStream"
      Effect   = "Allow"
      Action   = ["kms:Decrypt", "kms:DescribeKey"]
      Resource = [var.kms_key_arn]
    }
    # Amazon SNS Developer Guide, "Setting up AWS KMS permissions" (encryption at rest): a
    # publisher to an encrypted topic needs "kms:GenerateDataKey*" and "kms:Decrypt".
    publish_to_topics = {
      Sid       = "EncryptForEncryptedTopics"
      Effect    = "Allow"
      Action    = ["kms:GenerateDataKey", "kms:Decrypt"]
      Resource  = [var.kms_key_arn]
      Condition = { StringEquals = { "kms:ViaService" = local.kms_via_service["sns"] } }
    }
    # Amazon SQS Developer Guide, "Amazon SQS key management", "Configuring AWS KMS permissions
    # for producers": "kms:GenerateDataKey" and "kms:Decrypt" to send to an encrypted queue.
    send_to_queues = {
      Sid       = "EncryptForEncryptedQueues"
      Effect    = "Allow"
      Action    = ["kms:GenerateDataKey", "kms:Decrypt"]
      Resource  = [var.kms_key_arn]
      Condition = { StringEquals = { "kms:ViaService" = local.kms_via_service["sqs"] } }
    }
    # Same guide, "Configuring AWS KMS permissions for consumers": "kms:Decrypt" to receive; the
    # Lambda Developer Guide ("Using Lambda with Amazon SQS", execution role) asks the same of a
    # function whose queue uses a customer managed key.
    receive_from_queues = {
      Sid       = "DecryptReceivedMessages"
      Effect    = "Allow"
      Action    = ["kms:Decrypt"]
      Resource  = [var.kms_key_arn]
      Condition = { StringEquals = { "kms:ViaService" = local.kms_via_service["sqs"] } }
    }
  }

  # Which of those each role needs: what it reads, writes, publishes, sends or receives.
  kms_needs = {
    # PutItem/UpdateItem/DeleteItem on the connections table, sns:Publish, sqs:SendMessage.
    api_gateway = ["tables", "publish_to_topics", "send_to_queues"]
    # The authorizer touches no encrypted data (its log group is CloudWatch Logs' business).
    authorizer = []
    # The tables (the members table included), the two streams (connections and subscriptions,
    # both DynamoDB Streams of the stack's tables: one statement covers them), its failure queue
    # (the event source's on-failure destination sends with the function's role), the
    # notifications queue (join/leave frames) and the presence destination.
    presence = concat(["tables", "table_stream", "send_to_queues"],
      var.presence_destination == "topic" ? ["publish_to_topics"] : [],
    )
    # The tables (subscribe/unsubscribe requests write the subscriptions and connections
    # tables), the notifications queue it consumes, re-queues to and dead-letters into (the
    # function's dead-letter config sends with its role too).
    pusher = ["tables", "receive_from_queues", "send_to_queues"]
  }
  kms_role_statements = {
    for role, needs in local.kms_needs : role => [for need in needs : local.kms_statements[need] if var.kms_key_arn != null]
  }

  # What the key's own policy must allow the services that use it as their own principals. Built
  # from inputs and the key's ARN only (the key is in the stack's account and region), so it is
  # known at plan and can be written into the key policy before the module creates anything.
  kms_key_account = try(split(":", var.kms_key_arn)[4], "")
  kms_key_policy_statements = [for statement in [
    # CloudWatch Logs User Guide, "Encrypt log data in CloudWatch Logs using AWS Key Management
    # Service": the key policy allows "logs.<region>.amazonaws.com" kms:Encrypt*, Decrypt*,
    # ReEncrypt*, GenerateDataKey*, Describe*, with the condition ArnLike
    # "kms:EncryptionContext:aws:logs:arn" on the log groups that may use it. Without it creating
    # the log groups fails.
    {
      Sid       = "CloudWatchLogsEncryptsTheStackLogGroups"
      Effect    = "Allow"
      Principal = { Service = "logs.${local.region}.amazonaws.com" }
      Action    = ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"]
      Resource  = "*"
      Condition = {
        ArnLike = {
          "kms:EncryptionContext:aws:logs:arn" = [
            for group in ["/aws/lambda/${var.name}-*", "/aws/apigateway/${var.name}/*", "API-Gateway-Execution-Logs_*/${var.stage}"] :
            "arn:${local.partition}:logs:${local.region}:${local.kms_key_account}:log-group:${group}"
          ]
        }
      }
    },
    # Amazon SQS Developer Guide, "Amazon SQS key management", "Enable compatibility between AWS
    # services ... and encrypted queues": the service principal that sends to an encrypted queue
    # (here SNS, dead-lettering what it cannot hand to the pusher into the notifications DLQ)
    # needs kms:GenerateDataKey and kms:Decrypt in the key policy. Without it SNS cannot store
    # those notifications and they are lost.
    {
      Sid       = "SnsDeadLettersIntoEncryptedQueues"
      Effect    = "Allow"
      Principal = { Service = "sns.amazonaws.com" }
      Action    = ["kms:GenerateDataKey", "kms:Decrypt"]
      Resource  = "*"
    },
  ] : statement if var.kms_key_arn != null]

  api_gateway_policy = {
    Version = "2012-10-17"
    Statement = concat([
      {
        Sid      = "ConnectionsTable"
        Effect   = "Allow"
        Action   = ["dynamodb:PutItem", "dynamodb:DeleteItem", "dynamodb:UpdateItem"]
        Resource = [local.table_arn]
      },
      {
        Sid      = "PublishToMessagesTopic"
        Effect   = "Allow"
        Action   = ["sns:Publish"]
        Resource = [local.messages_topic_arn]
      },
      {
        Sid      = "SendToMessagesQueue"
        Effect   = "Allow"
        Action   = ["sqs:SendMessage"]
        Resource = [local.messages_queue_arn]
      },
      # send/publish with a `message` that is not a JSON object: the template sends the sender's
      # invalid_message frame to the pusher instead of the message to the back ends.
      {
        Sid      = "RefuseThroughNotificationsTopic"
        Effect   = "Allow"
        Action   = ["sns:Publish"]
        Resource = [local.notifications_topic_arn]
      },
      {
        Sid      = "RefuseThroughNotificationsQueue"
        Effect   = "Allow"
        Action   = ["sqs:SendMessage"]
        Resource = [local.notifications_queue_arn]
      },
    ], local.kms_role_statements["api_gateway"])
  }

  lambda_common_statements = {
    for fn in local.functions : fn => concat([
      {
        Sid      = "WriteOwnLogs"
        Effect   = "Allow"
        Action   = ["logs:CreateLogStream", "logs:PutLogEvents"]
        Resource = ["${aws_cloudwatch_log_group.lambda[fn].arn}:*"]
      },
      {
        Sid      = "XRayTraces"
        Effect   = "Allow"
        Action   = ["xray:PutTraceSegments", "xray:PutTelemetryRecords"]
        Resource = ["*"]
      },
    ], local.kms_role_statements[fn])
  }

  lambda_statements = {
    authorizer = []

    presence = concat([
      {
        Sid      = "ReadTableStream"
        Effect   = "Allow"
        Action   = ["dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator"]
        Resource = [aws_dynamodb_table.this.stream_arn]
      },
      {
        # The subscriptions table's stream: subscriptions beginning and ending drive members,
        # join/leave frames, lifecycle events and the subscriptions gauge. Its own statement, so
        # each stream's grant shows what reads it.
        Sid      = "ReadSubscriptionsStream"
        Effect   = "Allow"
        Action   = ["dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator"]
        Resource = [aws_dynamodb_table.subscriptions.stream_arn]
      },
      {
        # The event source mappings (both streams) need ListStreams too ("Lambda needs the
        # following permissions to manage resources related to your DynamoDB stream:
        # DescribeStream, GetRecords, GetShardIterator, ListStreams", Lambda Developer Guide,
        # "Using Lambda with DynamoDB"), and ListStreams has no resource-level permissions
        # (Service Authorization Reference: its only resource is "*"), so on a stream's ARN it
        # would never be allowed. One statement serves both streams.
        Sid      = "ListTableStreams"
        Effect   = "Allow"
        Action   = ["dynamodb:ListStreams"]
        Resource = ["*"]
      },
      {
        Sid      = "CountLiveConnections"
        Effect   = "Allow"
        Action   = ["dynamodb:Query"]
        Resource = [local.table_arn]
      },
      {
        Sid      = "RecordFailedStreamBatches"
        Effect   = "Allow"
        Action   = ["sqs:SendMessage"]
        Resource = [aws_sqs_queue.presence_failures.arn]
      },
      {
        # subscribe/unsubscribe: the connection's cap counter, in the same transaction as the
        # subscription item (IAM checks a transaction's items as these actions), and the read
        # that tells a full connection from a gone one.
        Sid      = "CountSubscriptionsOnTheConnection"
        Effect   = "Allow"
        Action   = ["dynamodb:UpdateItem", "dynamodb:GetItem"]
        Resource = [local.table_arn]
      },
      {
        Sid      = "WriteSubscriptions"
        Effect   = "Allow"
        Action   = ["dynamodb:PutItem", "dynamodb:DeleteItem", "dynamodb:BatchWriteItem"]
        Resource = [local.subscriptions_table_arn]
      },
      {
        # The cleanup when a connection ends: its subscriptions, by connection id.
        Sid      = "FindSubscriptionsOfAConnection"
        Effect   = "Allow"
        Action   = ["dynamodb:Query"]
        Resource = ["${local.subscriptions_table_arn}/index/connection_id-index"]
      },
      {
        # The `presence` question with a channel: the members are read by one Query of the
        # channel's partition of the subscriptions table itself (the GSI above answers only
        # "which subscriptions has this connection").
        Sid      = "AnswerChannelPresence"
        Effect   = "Allow"
        Action   = ["dynamodb:Query"]
        Resource = [local.subscriptions_table_arn]
      },
      {
        # Members of a channel: a member item's connection set, the channel item's member set
        # and the gauge counters, each changed by one atomic UpdateItem (ADD/DELETE on a set,
        # ADD on a number); GetItem reads one item by key (a channel's members, which a
        # subscribe checks against max_members). Never a delete: an emptied item expires by TTL.
        Sid      = "TrackChannelMembers"
        Effect   = "Allow"
        Action   = ["dynamodb:GetItem", "dynamodb:UpdateItem"]
        Resource = [local.members_table_arn]
      },
      {
        # join/leave frames go to the channel's subscribers as notification requests (verbatim
        # frames) on the notifications queue, which the pusher fans out.
        Sid      = "SendJoinLeaveFrames"
        Effect   = "Allow"
        Action   = ["sqs:SendMessage"]
        Resource = [local.notifications_queue_arn]
      },
      {
        # `history` answers a channel's latest offset and epoch: its state item, read.
        Sid      = "ReadChannelOffset"
        Effect   = "Allow"
        Action   = ["dynamodb:GetItem"]
        Resource = [local.history_table_arn]
      },
      {
        # A subscribe to a channel that keeps history makes sure the channel has a sequence, so
        # even a first subscriber has a position to recover from: an UpdateItem of the state
        # adding 0 (a PutItem replaces a state whose time has passed with a new epoch). Never a
        # publication's item: the pusher keeps those.
        Sid      = "StartChannelSequence"
        Effect   = "Allow"
        Action   = ["dynamodb:UpdateItem", "dynamodb:PutItem"]
        Resource = [local.history_table_arn]
      },
      {
        # The kept publications after an offset: one Query of the channel's partition (the table
        # has no index).
        Sid      = "ReadChannelHistory"
        Effect   = "Allow"
        Action   = ["dynamodb:Query"]
        Resource = [local.history_table_arn]
      },
      ], var.presence_destination == "topic" ? [{
        Sid      = "PublishPresenceToTopic"
        Effect   = "Allow"
        Action   = ["sns:Publish"]
        Resource = [local.messages_topic_arn]
        }] : [], var.presence_destination == "queue" ? [{
        Sid      = "SendPresenceToQueue"
        Effect   = "Allow"
        Action   = ["sqs:SendMessage"]
        Resource = [local.messages_queue_arn]
    }] : [])

    pusher = [
      {
        # Every `connections` target (a back end's notification to connection ids, a narrowed
        # re-queue, the invalid_message frame a refused send/publish returns to its sender) is
        # found on the keys-only connection_id-index, then read whole by its key: one GetItem
        # per connection (lambdas/pusher/src/store.rs). Without it no such message is delivered.
        Sid      = "ReadTargetConnection"
        Effect   = "Allow"
        Action   = ["dynamodb:GetItem"]
        Resource = [local.table_arn]
      },
      {
        Sid      = "FindTargetConnections"
        Effect   = "Allow"
        Action   = ["dynamodb:Query", "dynamodb:Scan"]
        Resource = [local.table_arn, "${local.table_arn}/index/connection_id-index"]
      },
      {
        # The table's approximate item count decides how many shards a broadcast is split into.
        Sid      = "EstimateBroadcastSize"
        Effect   = "Allow"
        Action   = ["dynamodb:DescribeTable"]
        Resource = [local.table_arn]
      },
      {
        Sid      = "PruneStaleConnections"
        Effect   = "Allow"
        Action   = ["dynamodb:DeleteItem", "dynamodb:BatchWriteItem"]
        Resource = [local.table_arn]
      },
      {
        # A publication reads one partition per matching pattern; never a Scan.
        Sid      = "FindChannelSubscribers"
        Effect   = "Allow"
        Action   = ["dynamodb:Query"]
        Resource = [local.subscriptions_table_arn]
      },
      {
        Sid      = "PruneStaleSubscriptions"
        Effect   = "Allow"
        Action   = ["dynamodb:DeleteItem", "dynamodb:BatchWriteItem"]
        Resource = [local.subscriptions_table_arn]
      },
      {
        # A back end's `subscribe` request: one subscription item per live connection of the
        # targets, written as a client's subscribe writes it (PutItem, only where none exists).
        # Removal (`unsubscribe`) is the DeleteItem of PruneStaleSubscriptions.
        Sid      = "SubscribeConnectionsOnRequest"
        Effect   = "Allow"
        Action   = ["dynamodb:PutItem"]
        Resource = [local.subscriptions_table_arn]
      },
      {
        # A back end's `unsubscribe` of a subscription a client made (counted) gives back its
        # place under the connection's cap: the connection item's counter, decremented.
        Sid      = "FreeSubscriptionSlotOnRequest"
        Effect   = "Allow"
        Action   = ["dynamodb:UpdateItem"]
        Resource = [local.table_arn]
      },
      {
        # A publication to a channel that keeps history takes the channel's next offset: one
        # atomic UpdateItem of its state item (it returns the new offset, so no read is needed).
        Sid      = "AssignChannelOffsets"
        Effect   = "Allow"
        Action   = ["dynamodb:UpdateItem"]
        Resource = [local.history_table_arn]
      },
      {
        # ...and is kept as one item at that offset. Never deleted by the pusher: TTL collects.
        Sid      = "StoreChannelHistory"
        Effect   = "Allow"
        Action   = ["dynamodb:PutItem"]
        Resource = [local.history_table_arn]
      },
      {
        # Send (POST), inspect (GET) and close (DELETE) connections of this stage only.
        Sid    = "ManageConnections"
        Effect = "Allow"
        Action = ["execute-api:ManageConnections"]
        Resource = [for method in ["POST", "GET", "DELETE"] :
          "${aws_apigatewayv2_api.this.execution_arn}/${var.stage}/${method}/@connections/*"
        ]
      },
      {
        Sid      = "ConsumeNotificationsQueue"
        Effect   = "Allow"
        Action   = ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility", "sqs:GetQueueAttributes"]
        Resource = [local.notifications_queue_arn]
      },
      {
        # A request that still failed for some connections is re-queued narrowed to those.
        Sid      = "RequeueNarrowedRequests"
        Effect   = "Allow"
        Action   = ["sqs:SendMessage"]
        Resource = [local.notifications_queue_arn]
      },
      {
        Sid      = "DeadLetterRejectedRequests"
        Effect   = "Allow"
        Action   = ["sqs:SendMessage"]
        Resource = [aws_sqs_queue.notifications_dlq.arn]
      },
    ]
  }

  lambda_policies = {
    for fn in local.functions : fn => {
      Version   = "2012-10-17"
      Statement = concat(local.lambda_common_statements[fn], local.lambda_statements[fn])
    }
  }

  assume_role_policies = {
    lambda = jsonencode({
      Version = "2012-10-17"
      Statement = [{
        Effect    = "Allow"
        Action    = "sts:AssumeRole"
        Principal = { Service = "lambda.amazonaws.com" }
      }]
    })
    # Confused-deputy protection where AWS sets the key: the IAM User Guide ("AWS global condition
    # context keys") says "the aws:SourceAccount condition key is only available when the call to
    # your resource is made directly by an AWS service principal", and API Gateway documents no
    # cross-service confused-deputy keys for the role it assumes for an integration's credentials
    # (a public report of a REST API integration found aws:SourceAccount absent there: a plain
    # StringEquals denied every AssumeRole, every request answered 500). So the account is
    # compared only when API Gateway supplies it (StringEqualsIfExists), which can never lock the
    # integrations out. aws:SourceArn is left out: AWS documents no value API Gateway would send
    # for it, and a guessed pattern that did not match would deny every integration call.
    # Passing the role to an integration needs iam:PassRole in this account in any case.
    apigateway = jsonencode({
      Version = "2012-10-17"
      Statement = [{
        Effect    = "Allow"
        Action    = "sts:AssumeRole"
        Principal = { Service = "apigateway.amazonaws.com" }
        Condition = { StringEqualsIfExists = { "aws:SourceAccount" = local.account_id } }
      }]
    })
  }
}

resource "aws_iam_role" "api_gateway" {
  name               = "${var.name}-apigw-integrations"
  description        = "API Gateway's direct integrations of sumu ${var.name} (DynamoDB, SNS, SQS)."
  assume_role_policy = local.assume_role_policies["apigateway"]
  tags               = local.tags
}

resource "aws_iam_role_policy" "api_gateway" {
  name   = "integrations"
  role   = aws_iam_role.api_gateway.id
  policy = jsonencode(local.api_gateway_policy)
}

resource "aws_iam_role" "lambda" {
  for_each = local.functions

  name               = "${var.name}-${each.key}"
  description        = "The ${each.key} Lambda of sumu ${var.name}."
  assume_role_policy = local.assume_role_policies["lambda"]
  tags               = local.tags
}

resource "aws_iam_role_policy" "lambda" {
  for_each = local.functions

  name   = "${each.key}-least-privilege"
  role   = aws_iam_role.lambda[each.key].id
  policy = jsonencode(local.lambda_policies[each.key])
}
