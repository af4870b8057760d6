variable "region" {
  description = "AWS region to deploy to."
  type        = string
  default     = "eu-west-1"
}

variable "name" {
  description = "Prefix of every resource name."
  type        = string
  default     = "sumu"
}

variable "stage" {
  description = "Stage name: clients connect to wss://…/{stage}."
  type        = string
  default     = "live"
}

variable "issuers" {
  description = "Your identity providers (issuer, JWKS URL, audiences). Empty: only the demo Cognito user pool (create_demo_user_pool) is trusted."
  type = list(object({
    issuer    = string
    jwks_uri  = string
    audiences = list(string)
  }))
  default  = []
  nullable = false
}

variable "create_demo_user_pool" {
  description = "Create a Cognito user pool and app client whose ID tokens the authorizer trusts, so you can connect before wiring your own identity provider (README, step 3)."
  type        = bool
  default     = true
}

variable "create_demo_backend" {
  description = "Deploy the demo back end (lambdas/demo-backend), which answers clients speaking the demo's message protocol. It consumes the messages queue (and subscribes to the messages topic): set false when your own back end reads the queue."
  type        = bool
  default     = true
}

variable "lambda_zip_dir" {
  description = "Directory holding <function>/bootstrap.zip as written by scripts/build-lambdas (the module's Lambdas and the demo back end); null means this repository's target/lambda."
  type        = string
  default     = null
}

variable "manage_api_gateway_account" {
  description = "Set the region's API Gateway CloudWatch Logs role (an account-wide, per-region setting that stage logging requires). Set false if your account already has one."
  type        = bool
  default     = true
}

variable "presence_destination" {
  description = "Where presence events go: topic, queue or none."
  type        = string
  default     = "topic"
}

variable "channel_namespaces" {
  description = "Channel namespaces: which channels keep history, how much and for how long, which track members (join_leave, lifecycle_events) and how many a channel may have (max_members, default 100) (the module's input; docs/deploying.md § Channel namespaces). Empty: no channel keeps history or tracks members."
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
}

variable "dashboard" {
  description = "Create the stack's CloudWatch dashboard (the module's input; docs/deploying.md § The dashboard)."
  type        = bool
  default     = true
  nullable    = false
}

variable "conformance_grants" {
  description = "Grant every connection subscribe and publish on conformance/*, the channels the conformance suite (tests/conformance) uses: set true on a deployment you check with it (docs/deploying.md § Check a deployment)."
  type        = bool
  default     = false
  nullable    = false
}

variable "alarm_email" {
  description = "E-mail address subscribed to the alarms topic (confirm the subscription mail AWS sends); null creates no subscription."
  type        = string
  default     = null
}

variable "custom_domain" {
  description = "Optional custom domain: the domain name, an ACM certificate ARN for it in this region, and the Route 53 hosted zone id."
  type = object({
    domain_name     = string
    certificate_arn = string
    hosted_zone_id  = string
  })
  default = null
}

variable "tags" {
  description = "Tags for every resource."
  type        = map(string)
  default     = { project = "sumu" }
}
