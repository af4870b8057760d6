# The connections table (DESIGN.md § Connections table). Attribute names are those of lambdas/wire.
resource "aws_dynamodb_table" "this" {
  name         = local.table_name
  billing_mode = "PAY_PER_REQUEST"
  hash_key     = "user_id"
  range_key    = "connection_id"

  attribute {
    name = "user_id"
    type = "S"
  }

  attribute {
    name = "connection_id"
    type = "S"
  }

  # A connection is live iff expires_at > now; TTL only collects what readers already ignore.
  ttl {
    attribute_name = "expires_at"
    enabled        = true
  }

  # The presence Lambda's input: it needs only the keys (it re-reads the user's live connections).
  stream_enabled   = true
  stream_view_type = "KEYS_ONLY"

  # Finds a connection without its user (management API callers, direct pushes).
  global_secondary_index {
    name            = "connection_id-index"
    hash_key        = "connection_id"
    projection_type = "KEYS_ONLY"
  }

  point_in_time_recovery {
    enabled = true
  }

  server_side_encryption {
    enabled     = true
    kms_key_arn = var.kms_key_arn
  }

  tags = local.tags
}

# The subscriptions table (docs/channels.md § Storage; attribute names in lambdas/wire,
# `sumu_wire::subscriptions`): one item per (pattern, connection). A publication to a channel is
# one Query per pattern that matches it, never a Scan.
resource "aws_dynamodb_table" "subscriptions" {
  name         = local.subscriptions_table_name
  billing_mode = "PAY_PER_REQUEST"
  hash_key     = "channel"
  range_key    = "connection_id"

  attribute {
    name = "channel"
    type = "S"
  }

  attribute {
    name = "connection_id"
    type = "S"
  }

  # A subscription lives as long as its connection (expires_at is the connection's); readers
  # filter on it, TTL only collects.
  ttl {
    attribute_name = "expires_at"
    enabled        = true
  }

  # A connection's subscriptions, for the presence Lambda's cleanup when the connection ends
  # (keys only: they include the pattern).
  global_secondary_index {
    name            = "connection_id-index"
    hash_key        = "connection_id"
    projection_type = "KEYS_ONLY"
  }

  point_in_time_recovery {
    enabled = true
  }

  server_side_encryption {
    enabled     = true
    kms_key_arn = var.kms_key_arn
  }

  tags = local.tags
}
