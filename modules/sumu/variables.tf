variable "name" {
  description = "Prefix of every resource name (API, table, topics, queues, functions, roles). Several stacks may share an account and region as long as their names differ."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z][A-Za-z0-9-]{0,31}$", var.name))
    error_message = "name must start with a letter and contain only letters, digits and hyphens (at most 32 characters): it prefixes IAM role and Lambda names, which have tight length limits."
  }
}

variable "stage" {
  description = "Name of the API Gateway stage; clients connect to wss://…/{stage}."
  type        = string
  default     = "live"

  validation {
    condition     = can(regex("^[A-Za-z0-9_-]{1,128}$", var.stage))
    error_message = "stage must be 1-128 letters, digits, hyphens or underscores ($default is not allowed: the stage name is part of the URL and of IAM resource ARNs)."
  }
}

variable "issuers" {
  description = "Trusted JWT issuers: the issuer (`iss` claim), the URL of its JWKS (or Google/Firebase x509 certificate map), and the audiences it may mint tokens for. Passed to the authorizer as JSON in JWT_ISSUERS."
  type = list(object({
    issuer    = string
    jwks_uri  = string
    audiences = list(string)
  }))

  validation {
    condition     = length(var.issuers) > 0
    error_message = "issuers must name at least one trusted JWT issuer: without one every connection is refused."
  }

  validation {
    condition     = alltrue([for i in var.issuers : length(i.audiences) > 0 && alltrue([for a in i.audiences : length(a) > 0])])
    error_message = "every issuer needs at least one non-empty audience: a token minted for another application of the same issuer must not be accepted."
  }

  validation {
    condition = alltrue([for i in var.issuers :
      can(regex("^https://", i.jwks_uri)) || can(regex("^http://(127\\.0\\.0\\.1|localhost)(:[0-9]+)?/", i.jwks_uri))
    ])
    error_message = "every jwks_uri must be https:// (plain http:// is accepted only for 127.0.0.1 or localhost, for local development): keys fetched in clear text could be replaced in transit."
  }
}

variable "authorizer_environment" {
  description = "Extra environment variables for the authorizer Lambda, e.g. JWT_LEEWAY_SECONDS, JWT_PRINCIPAL_CLAIM, JWT_CONTEXT_CLAIMS, JWT_ALGORITHMS, JWKS_TIMEOUT_MS (see the configuration table in docs/authorizer.md). The issuers themselves come from var.issuers."
  type        = map(string)
  default     = {}

  validation {
    condition     = length(setintersection(keys(var.authorizer_environment), ["JWT_ISSUERS", "JWT_ISSUER", "JWT_JWKS_URI", "JWT_AUDIENCES", "JWT_GRANTS_CLAIM", "CHANNELS_STATIC_SUBSCRIBE", "CHANNELS_STATIC_PUBLISH"])) == 0
    error_message = "authorizer_environment must not set JWT_ISSUERS, JWT_ISSUER, JWT_JWKS_URI, JWT_AUDIENCES, JWT_GRANTS_CLAIM or CHANNELS_STATIC_*: they come from var.issuers and var.channels."
  }
}

variable "presence_environment" {
  description = "Extra environment variables for the presence Lambda, e.g. PRESENCE_QUERY_CONCURRENCY. The table, destination and channel variables are set by the module."
  type        = map(string)
  default     = {}
  nullable    = false

  validation {
    condition     = length(setintersection(keys(var.presence_environment), ["CONNECTIONS_TABLE", "PRESENCE_DESTINATION", "MESSAGES_TOPIC_ARN", "MESSAGES_QUEUE_URL", "SUBSCRIPTIONS_TABLE", "MAX_SUBSCRIPTIONS_PER_CONNECTION", "HISTORY_TABLE", "CHANNEL_NAMESPACES", "MEMBERS_TABLE", "NOTIFICATIONS_QUEUE_URL"])) == 0
    error_message = "presence_environment must not set CONNECTIONS_TABLE, PRESENCE_DESTINATION, MESSAGES_TOPIC_ARN, MESSAGES_QUEUE_URL, SUBSCRIPTIONS_TABLE, MAX_SUBSCRIPTIONS_PER_CONNECTION, HISTORY_TABLE, CHANNEL_NAMESPACES, MEMBERS_TABLE or NOTIFICATIONS_QUEUE_URL: the module sets them (var.channels for the cap, var.channel_namespaces for the namespaces)."
  }
}

variable "pusher_environment" {
  description = "Extra environment variables for the pusher Lambda, e.g. PUSHER_POST_CONCURRENCY, PUSHER_SCAN_SEGMENTS, PUSHER_MAX_ATTEMPTS. The table, endpoint and queue variables are set by the module."
  type        = map(string)
  default     = {}
  nullable    = false

  validation {
    condition     = length(setintersection(keys(var.pusher_environment), ["CONNECTIONS_TABLE", "SUBSCRIPTIONS_TABLE", "MANAGEMENT_ENDPOINT", "NOTIFICATIONS_QUEUE_URL", "DEAD_LETTER_QUEUE_URL", "WEBSOCKET_API_ID", "WEBSOCKET_STAGE", "PUSHER_SHARD_THRESHOLD", "HISTORY_TABLE", "CHANNEL_NAMESPACES"])) == 0
    error_message = "pusher_environment must not set CONNECTIONS_TABLE, SUBSCRIPTIONS_TABLE, HISTORY_TABLE, MANAGEMENT_ENDPOINT, NOTIFICATIONS_QUEUE_URL, DEAD_LETTER_QUEUE_URL, WEBSOCKET_API_ID, WEBSOCKET_STAGE, PUSHER_SHARD_THRESHOLD or CHANNEL_NAMESPACES: the module sets the tables, endpoint and queues, limits.pusher_shard_threshold sets the threshold and var.channel_namespaces the namespaces."
  }
}

variable "channels" {
  description = <<-EOT
    Channels (docs/channels.md). grants_claim: the token claim holding {"subscribe":[…],"publish":[…]}.
    static_subscribe / static_publish: patterns every connection is granted, where {sub} stands for
    its principal (e.g. ["public/*", "user/{sub}"]). max_subscriptions_per_connection: the cap a
    client's subscribes are held to (the 101st is refused by default).
  EOT
  type = object({
    grants_claim                     = optional(string, "channels")
    static_subscribe                 = optional(list(string), [])
    static_publish                   = optional(list(string), [])
    max_subscriptions_per_connection = optional(number, 100)
  })
  default  = {}
  nullable = false

  validation {
    condition     = length(trimspace(var.channels.grants_claim)) > 0 && !strcontains(var.channels.grants_claim, ",")
    error_message = "channels.grants_claim must be a claim name (not empty)."
  }
  validation {
    # The authorizer checks each pattern exactly at start; this catches the shape early, at plan:
    # 1-5 segments of A-Z a-z 0-9 _ - . : @ = + | (or the placeholder {sub}), `prefix/*`, or `*`.
    condition = alltrue([for p in concat(var.channels.static_subscribe, var.channels.static_publish) :
      can(regex("^(\\*|([A-Za-z0-9_.:@=+|-]+|\\{sub\\})(/([A-Za-z0-9_.:@=+|-]+|\\{sub\\})){0,4}(/\\*)?)$", p))
    ])
    error_message = "every static grant must be a channel pattern: 1-5 segments of A-Z a-z 0-9 _ - . : @ = + | or {sub}, optionally ending in /*, or * alone."
  }
  validation {
    condition     = var.channels.max_subscriptions_per_connection >= 1 && var.channels.max_subscriptions_per_connection <= 10000 && floor(var.channels.max_subscriptions_per_connection) == var.channels.max_subscriptions_per_connection
    error_message = "channels.max_subscriptions_per_connection must be a whole number from 1 to 10000."
  }
}

variable "channel_namespaces" {
  description = <<-EOT
    Channel namespaces (docs/channels.md § History and recovery): per channel pattern, how much
    history it keeps. The first namespace whose pattern matches a channel applies; a channel no
    namespace matches keeps no history. pattern: a channel, `prefix/*` or `*` (no {sub}).
    history_size: publications kept per channel, 0-1000 (0: no history). history_ttl_seconds:
    how long each is kept, 1-604800 (7 days) when history_size > 0. join_leave: members get
    join/leave frames; lifecycle_events: back ends get OCCUPIED/VACATED and JOINED/LEFT events
    (docs/presence.md). max_members: the members cap of a channel in a namespace that tracks
    members (join_leave or lifecycle_events), 1-1000, default 100. At most 16 namespaces and
    2,048 bytes of JSON (they travel in the pusher's and presence's environment, which Lambda
    caps at 4 KB in all).
  EOT
  type = list(object({
    pattern             = string
    history_size        = optional(number, 0)
    history_ttl_seconds = optional(number, 0)
    join_leave          = optional(bool, false)
    lifecycle_events    = optional(bool, false)
    max_members         = optional(number, 100)
  }))
  default  = []
  nullable = false

  validation {
    # The Lambdas check each pattern exactly at start (a bad one stops them at init); this
    # catches it at plan: `*`, 1-5 segments of 1-64 characters of A-Z a-z 0-9 _ - . : @ = + |,
    # or 1-4 such segments followed by `/*` (a deeper prefix has no channel below it).
    condition = alltrue([for n in var.channel_namespaces :
      can(regex(local.namespace_pattern_regex, n.pattern))
    ])
    error_message = "channel_namespaces: every pattern must be a channel (1-5 segments of 1-64 characters of A-Z a-z 0-9 _ - . : @ = + |, joined by /), a prefix of 1-4 such segments followed by /*, or * alone; {sub} is not allowed here. Not a pattern: ${join(", ", [for n in var.channel_namespaces : jsonencode(n.pattern) if !can(regex(local.namespace_pattern_regex, n.pattern))])}."
  }
  validation {
    condition     = alltrue([for n in var.channel_namespaces : try(length(n.pattern), 0) <= 256])
    error_message = "channel_namespaces: a pattern has at most 256 bytes. Too long: ${join(", ", [for n in var.channel_namespaces : "${substr(n.pattern, 0, 40)}… (${length(n.pattern)} bytes)" if try(length(n.pattern), 0) > 256])}."
  }
  validation {
    condition = alltrue([for n in var.channel_namespaces :
      n.history_size >= 0 && n.history_size <= 1000 && floor(n.history_size) == n.history_size
    ])
    error_message = "channel_namespaces: history_size must be a whole number from 0 to 1000 (0: no history). Wrong: ${join(", ", [for n in var.channel_namespaces : "${jsonencode(n.pattern)} has ${n.history_size}" if !(n.history_size >= 0 && n.history_size <= 1000 && floor(n.history_size) == n.history_size)])}."
  }
  validation {
    condition = alltrue([for n in var.channel_namespaces :
      n.history_ttl_seconds >= 0 && n.history_ttl_seconds <= 604800 && floor(n.history_ttl_seconds) == n.history_ttl_seconds
    ])
    error_message = "channel_namespaces: history_ttl_seconds must be a whole number from 0 to 604800 (7 days). Wrong: ${join(", ", [for n in var.channel_namespaces : "${jsonencode(n.pattern)} has ${n.history_ttl_seconds}" if !(n.history_ttl_seconds >= 0 && n.history_ttl_seconds <= 604800 && floor(n.history_ttl_seconds) == n.history_ttl_seconds)])}."
  }
  validation {
    condition     = alltrue([for n in var.channel_namespaces : n.history_ttl_seconds >= 1 if n.history_size > 0])
    error_message = "channel_namespaces: a namespace that keeps history (history_size > 0) needs history_ttl_seconds of at least 1: how long each publication is kept. Without one: ${join(", ", [for n in var.channel_namespaces : jsonencode(n.pattern) if n.history_size > 0 && n.history_ttl_seconds < 1])}."
  }
  validation {
    # Pusher's presence channels default to 100 members; every join is a fan-out to the whole
    # channel, so the cap stays at most 1000 (docs/presence.md).
    condition = alltrue([for n in var.channel_namespaces :
      n.max_members >= 1 && n.max_members <= 1000 && floor(n.max_members) == n.max_members
    ])
    error_message = "channel_namespaces: max_members must be a whole number from 1 to 1000 (default 100): the most members a channel of the namespace may have. Wrong: ${join(", ", [for n in var.channel_namespaces : "${jsonencode(n.pattern)} has ${n.max_members}" if !(n.max_members >= 1 && n.max_members <= 1000 && floor(n.max_members) == n.max_members)])}."
  }
  validation {
    condition     = length(var.channel_namespaces) <= 16
    error_message = "channel_namespaces: at most 16 namespaces (this list has ${length(var.channel_namespaces)}): the list travels in the Lambdas' environment, which Lambda caps at 4 KB in all."
  }
  validation {
    # Lambda caps a function's environment at 4 KB in all; the rest of presence's and the
    # pusher's (table names, queue URLs, topic ARNs: about 0.5 KB measured on terraform/local)
    # and the *_environment extras get the other half. jsonencode is compact, and a valid list
    # is ASCII, so characters are bytes.
    condition     = length(jsonencode(var.channel_namespaces)) <= 2048
    error_message = "channel_namespaces: the list is ${length(jsonencode(var.channel_namespaces))} bytes as JSON (CHANNEL_NAMESPACES), at most 2048: Lambda caps a function's whole environment at 4 KB. Use fewer or shorter patterns."
  }
}

variable "presence_destination" {
  description = "Where the presence Lambda publishes ONLINE/OFFLINE events: the messages `topic`, the messages `queue`, or `none`."
  type        = string
  default     = "topic"

  validation {
    condition     = contains(["topic", "queue", "none"], var.presence_destination)
    error_message = "presence_destination must be one of: topic, queue, none."
  }
}

variable "table_name" {
  description = "Name of the connections table; null means \"{name}-connections\"."
  type        = string
  default     = null

  validation {
    condition     = var.table_name == null || can(regex("^[A-Za-z0-9_.-]{3,255}$", var.table_name))
    error_message = "table_name must be 3-255 letters, digits, underscores, hyphens or dots."
  }
}

variable "create_messages_topic" {
  description = "Create the messages topic (client `publish` messages and presence events). Set false and give messages_topic_arn to bring your own."
  type        = bool
  default     = true
}

variable "messages_topic_arn" {
  description = "ARN of an existing messages topic; only with create_messages_topic = false."
  type        = string
  default     = null

  validation {
    condition     = (var.messages_topic_arn == null) == var.create_messages_topic
    error_message = "messages_topic_arn is required when create_messages_topic = false, and must be null when it is true."
  }

  validation {
    condition     = var.messages_topic_arn == null || can(regex("^arn:[^:]+:sns:[^:]+:[0-9]{12}:[A-Za-z0-9_.-]+$", var.messages_topic_arn))
    error_message = "messages_topic_arn must be an SNS topic ARN (arn:aws:sns:REGION:ACCOUNT:NAME)."
  }
}

variable "create_messages_queue" {
  description = "Create the messages queue (client `send` messages and, with presence_destination = queue, presence events) and its dead-letter queue. Set false and give messages_queue to bring your own."
  type        = bool
  default     = true
}

variable "messages_queue" {
  description = "An existing messages queue (its ARN and URL); only with create_messages_queue = false."
  type = object({
    arn = string
    url = string
  })
  default = null

  validation {
    condition     = (var.messages_queue == null) == var.create_messages_queue
    error_message = "messages_queue is required when create_messages_queue = false, and must be null when it is true."
  }
}

variable "create_notifications_topic" {
  description = "Create the notifications topic (back ends publish notification requests; the pusher consumes them). Set false and give notifications_topic_arn to bring your own."
  type        = bool
  default     = true
}

variable "notifications_topic_arn" {
  description = "ARN of an existing notifications topic; only with create_notifications_topic = false."
  type        = string
  default     = null

  validation {
    condition     = (var.notifications_topic_arn == null) == var.create_notifications_topic
    error_message = "notifications_topic_arn is required when create_notifications_topic = false, and must be null when it is true."
  }
}

variable "create_notifications_queue" {
  description = "Create the notifications queue (back ends send notification requests; the pusher consumes them). Set false and give notifications_queue to bring your own."
  type        = bool
  default     = true
}

variable "notifications_queue" {
  description = "An existing notifications queue (its ARN and URL); only with create_notifications_queue = false. Its visibility timeout must be at least the pusher's timeout."
  type = object({
    arn = string
    url = string
  })
  default = null

  validation {
    condition     = (var.notifications_queue == null) == var.create_notifications_queue
    error_message = "notifications_queue is required when create_notifications_queue = false, and must be null when it is true."
  }
}

variable "lambda_zips" {
  description = "Paths of the Lambda deployment packages built by scripts/build-lambdas; a null entry means target/lambda/<function>/bootstrap.zip in this repository."
  type = object({
    authorizer = optional(string)
    presence   = optional(string)
    pusher     = optional(string)
  })
  default  = {}
  nullable = false
}

variable "lambda_settings" {
  description = "Memory (MB) and timeout (s) of each Lambda."
  type = object({
    authorizer_memory_size = optional(number, 256)
    authorizer_timeout     = optional(number, 10)
    presence_memory_size   = optional(number, 256)
    presence_timeout       = optional(number, 30)
    pusher_memory_size     = optional(number, 512)
    pusher_timeout         = optional(number, 60)
  })
  default  = {}
  nullable = false

  validation {
    condition = alltrue([for k, v in var.lambda_settings :
      endswith(k, "_memory_size") ? (v >= 128 && v <= 10240) : (v >= 1 && v <= 900)
    ])
    error_message = "Lambda memory sizes must be 128-10240 MB and timeouts 1-900 s."
  }

  validation {
    # The authorizer runs inside the $connect handshake, which API Gateway abandons after 29 s.
    condition     = var.lambda_settings.authorizer_timeout <= 29
    error_message = "lambda_settings.authorizer_timeout must be at most 29 s (API Gateway's integration timeout)."
  }
}

variable "lambda_json_logging" {
  description = "Configure the Lambdas' CloudWatch logging as JSON (logging_config). Emulators that do not keep logging_config can turn it off; the log groups stay the same."
  type        = bool
  default     = true
}

variable "lambda_log_level" {
  description = "Application and system log level of the Lambdas (with lambda_json_logging)."
  type        = string
  default     = "INFO"

  validation {
    condition     = contains(["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"], var.lambda_log_level)
    error_message = "lambda_log_level must be one of TRACE, DEBUG, INFO, WARN, ERROR, FATAL."
  }
}

variable "attach_event_sources" {
  description = "Wire the event sources to the Lambdas: stream → presence, notifications queue → pusher, notifications topic → pusher. Set false only when an emulator (sumu-local) plays the event sources itself."
  type        = bool
  default     = true
}

variable "limits" {
  description = "Throttling, batching and retry limits."
  type = object({
    throttling_burst_limit      = optional(number, 500)
    throttling_rate_limit       = optional(number, 1000)
    integration_timeout_ms      = optional(number, 29000)
    presence_batch_size         = optional(number, 100)
    presence_max_retry_attempts = optional(number, 5)
    pusher_batch_size           = optional(number, 10)
    pusher_max_concurrency      = optional(number, 20)
    pusher_shard_threshold      = optional(number, 10000)
    queue_max_receive_count     = optional(number, 5)
    message_retention_seconds   = optional(number, 345600)
  })
  default  = {}
  nullable = false

  validation {
    condition     = var.limits.throttling_burst_limit >= 0 && var.limits.throttling_rate_limit > 0
    error_message = "limits.throttling_burst_limit must be >= 0 and limits.throttling_rate_limit > 0."
  }

  validation {
    condition     = var.limits.integration_timeout_ms >= 50 && var.limits.integration_timeout_ms <= 29000
    error_message = "limits.integration_timeout_ms must be 50-29000 (API Gateway's range for WebSocket integrations)."
  }

  validation {
    condition     = var.limits.presence_batch_size >= 1 && var.limits.presence_batch_size <= 10000 && var.limits.presence_max_retry_attempts >= -1 && var.limits.presence_max_retry_attempts <= 10000
    error_message = "limits.presence_batch_size must be 1-10000 and limits.presence_max_retry_attempts -1 (forever) to 10000."
  }

  validation {
    # An SQS event source without a batching window takes at most 10 messages; maximum_concurrency is 2-1000.
    condition     = var.limits.pusher_batch_size >= 1 && var.limits.pusher_batch_size <= 10 && var.limits.pusher_max_concurrency >= 2 && var.limits.pusher_max_concurrency <= 1000
    error_message = "limits.pusher_batch_size must be 1-10 and limits.pusher_max_concurrency 2-1000."
  }

  validation {
    # A broadcast to more connections than this is split into shards that concurrent pusher
    # invocations (at most pusher_max_concurrency) handle; 0 never splits (docs/pusher.md).
    condition     = var.limits.pusher_shard_threshold >= 0 && var.limits.pusher_shard_threshold <= 1000000 && floor(var.limits.pusher_shard_threshold) == var.limits.pusher_shard_threshold
    error_message = "limits.pusher_shard_threshold must be a whole number 0-1000000 (0: never split a broadcast)."
  }

  validation {
    condition     = var.limits.queue_max_receive_count >= 1 && var.limits.message_retention_seconds >= 60 && var.limits.message_retention_seconds <= 1209600
    error_message = "limits.queue_max_receive_count must be >= 1 and limits.message_retention_seconds 60-1209600."
  }
}

variable "stage_logging_level" {
  description = "API Gateway execution logging level of the stage's routes (OFF, ERROR or INFO). Execution logs and access logs need the account's API Gateway CloudWatch role (see README)."
  type        = string
  default     = "ERROR"

  validation {
    condition     = contains(["OFF", "ERROR", "INFO"], var.stage_logging_level)
    error_message = "stage_logging_level must be one of OFF, ERROR, INFO."
  }
}

variable "log_retention_days" {
  description = "Retention of every CloudWatch log group the module creates (Lambdas, the stage's access and execution logs)."
  type        = number
  default     = 30

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be a value CloudWatch Logs accepts (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288 or 3653)."
  }
}

variable "kms_key_arn" {
  description = "Customer managed KMS key for the tables, topics, queues and log groups; null uses AWS managed encryption (DynamoDB and SNS AWS managed keys, SQS managed SSE, CloudWatch Logs default). The roles get the permissions they need on it; the key's own policy must also contain output kms_key_policy_statements."
  type        = string
  default     = null

  validation {
    condition     = var.kms_key_arn == null || can(regex("^arn:[^:]+:kms:[^:]+:[0-9]{12}:key/.+$", var.kms_key_arn))
    error_message = "kms_key_arn must be a KMS key ARN (arn:aws:kms:REGION:ACCOUNT:key/ID)."
  }
}

variable "alarm_actions" {
  description = "ARNs notified when an alarm (dead-letter queue not empty, Lambda errors, integration errors of the stage) fires or recovers."
  type        = list(string)
  default     = []
  nullable    = false
}

variable "dashboard" {
  description = "Create the stack's CloudWatch dashboard ({name}): live connections and subscriptions, connections and messages in, deliveries and failures, API Gateway errors, pusher and authorizer latency, Lambda errors and throttles (docs/deploying.md § The dashboard). false opts out."
  type        = bool
  default     = true
  nullable    = false
}

variable "tags" {
  description = "Tags added to every resource that supports them."
  type        = map(string)
  default     = {}
  nullable    = false
}
