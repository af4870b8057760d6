variable "endpoint" {
  description = "The AWS-compatible endpoint every service call goes to (moto server), e.g. http://127.0.0.1:5000. scripts/test passes $SUMU_MOTO_ENDPOINT."
  type        = string
  default     = "http://127.0.0.1:5000"

  validation {
    condition     = can(regex("^http://(127\\.0\\.0\\.1|localhost|\\[::1\\]):[0-9]+/?$", var.endpoint))
    error_message = "endpoint must be a loopback http:// URL with a port: this configuration carries fake credentials and must never reach a real AWS endpoint."
  }
}

variable "region" {
  description = "Region name the emulator reports in ARNs."
  type        = string
  default     = "us-east-1"
}

variable "name" {
  description = "Prefix of every resource name (tests pass a unique one so suites can share one moto server)."
  type        = string
  default     = "sumu-local"
}

variable "stage" {
  description = "Stage name."
  type        = string
  default     = "local"
}

variable "sumu_local_url" {
  description = "Where sumu-local serves its development issuer's JWKS (scripts/dev: http://127.0.0.1:8080)."
  type        = string
  default     = "http://127.0.0.1:8080"
}

variable "lambda_zip_dir" {
  description = "Directory holding <function>/bootstrap.zip as written by scripts/build-lambdas; null means this repository's target/lambda."
  type        = string
  default     = null
}

variable "presence_destination" {
  description = "Where presence events go: topic, queue or none (the module's input). scripts/test also plans `queue`, so the IAM check knows that configuration's policies."
  type        = string
  default     = "topic"
}

variable "channel_namespaces" {
  description = "The module's channel_namespaces (history, members and their cap per channel pattern). The default is the demo's: rooms keep their last 100 messages for an hour and announce joins, leaves and lifecycle events."
  type = list(object({
    pattern             = string
    history_size        = optional(number, 0)
    history_ttl_seconds = optional(number, 0)
    join_leave          = optional(bool, false)
    lifecycle_events    = optional(bool, false)
    max_members         = optional(number, 100)
  }))
  default  = [{ pattern = "room/*", history_size = 100, history_ttl_seconds = 3600, join_leave = true, lifecycle_events = true }]
  nullable = false
}
