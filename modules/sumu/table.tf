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
