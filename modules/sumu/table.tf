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

  # The presence Lambda's second input (docs/presence.md): every subscription INSERT and REMOVE
  # drives members, join/leave frames, lifecycle events and the subscriptions gauge. New and old
  # images, because a REMOVE record must still carry the subscription's user_id (a keys-only
  # record has only channel and connection_id).
  stream_enabled   = true
  stream_view_type = "NEW_AND_OLD_IMAGES"

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

# The history table (docs/channels.md § History and recovery; attribute names in lambdas/wire):
# per channel, its state at offset 0 (`top`: the latest offset, `epoch`) and one item per kept
# publication at offset >= 1 (`epoch`, `publication`: the whole frame as JSON). Offsets come from
# one atomic UpdateItem of the state item; recovery is one Query of the channel's partition from
# an offset. Always created, like the subscriptions table: with no namespace keeping history it
# holds nothing, and on demand capacity costs nothing while unused.
resource "aws_dynamodb_table" "history" {
  name         = local.history_table_name
  billing_mode = "PAY_PER_REQUEST"
  hash_key     = "channel"
  range_key    = "offset"

  attribute {
    name = "channel"
    type = "S"
  }

  attribute {
    name = "offset"
    type = "N"
  }

  # A publication's expires_at is its publish time + history_ttl_seconds; the state item has
  # one too, so a channel nobody publishes to any more leaves nothing behind (its next
  # publication then starts a new epoch). TTL only collects: "DynamoDB typically deletes expired
  # items within two days of expiration ... Items that have expired and not been deleted will
  # still show up in reads, queries, and scans" (DynamoDB API Reference, UpdateTimeToLive), so
  # the Lambdas skip expired items themselves: nothing older than history_ttl_seconds is served.
  ttl {
    attribute_name = "expires_at"
    enabled        = true
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

# The members table (docs/presence.md; attribute names in lambdas/wire), written by the presence
# Lambda only, from the subscriptions stream:
# - a member item (channel = C, user_id = U): `connections` (SS, U's connection ids subscribed to
#   C itself), `changed_by`, `expires_at`;
# - a channel item (channel = "#" + C, user_id = "#"): `members` (SS of user ids), `changed_by`,
#   `expires_at`;
# - the gauge item (channel = "#", user_id = "gauges"): `connections` and `subscriptions` (N),
#   the live gauges the presence Lambda reports as metrics.
# Always created, like the history table: with no namespace tracking members it holds only the
# gauge item, and on demand capacity costs nothing while unused. No stream, no index: every read
# is by key.
resource "aws_dynamodb_table" "members" {
  name         = local.members_table_name
  billing_mode = "PAY_PER_REQUEST"
  hash_key     = "channel"
  range_key    = "user_id"

  attribute {
    name = "channel"
    type = "S"
  }

  attribute {
    name = "user_id"
    type = "S"
  }

  # Every change sets expires_at to 30 days ahead, longer than any member can stay without a
  # change (docs/presence.md § Storage): TTL collects the items the stream emptied long ago.
  ttl {
    attribute_name = "expires_at"
    enabled        = true
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
