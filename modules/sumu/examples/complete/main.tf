# modules/sumu with every kind of input: two issuers, presence to the queue, channel namespaces
# with history, a brought notifications topic, tuned limits, alarms to a topic. `terraform
# validate` checks it in scripts/test; to apply it, build the Lambdas first
# (scripts/build-lambdas) and configure AWS credentials.

terraform {
  required_version = ">= 1.9"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.32, < 6.0"
    }
  }
}

provider "aws" {
  region = "eu-west-1"
}

resource "aws_sns_topic" "alarms" {
  name              = "chat-alarms"
  kms_master_key_id = "alias/aws/sns"
}

# A notifications topic owned by another stack, e.g. your back end's.
resource "aws_sns_topic" "notifications" {
  name              = "chat-backend-notifications"
  kms_master_key_id = "alias/aws/sns"
}

module "sumu" {
  source = "../.."

  name  = "chat"
  stage = "v1"

  issuers = [
    {
      issuer    = "https://securetoken.google.com/my-firebase-project"
      jwks_uri  = "https://www.googleapis.com/service_accounts/v1/metadata/x509/securetoken@system.gserviceaccount.com"
      audiences = ["my-firebase-project"]
    },
    {
      issuer    = "https://login.example.com/"
      jwks_uri  = "https://login.example.com/.well-known/jwks.json"
      audiences = ["chat-web", "chat-mobile"]
    },
  ]
  authorizer_environment = {
    JWT_CONTEXT_CLAIMS = "email,name"
  }

  presence_destination = "queue"

  # Rooms keep their last 100 messages for an hour and show who is in them (join/leave frames,
  # at most 50 members a room). The first matching pattern wins, so the announcements room (20
  # messages for a week, lifecycle events to the back end, up to 1000 members) comes before
  # room/*; other channels keep nothing and track no members.
  channel_namespaces = [
    { pattern = "room/announcements", history_size = 20, history_ttl_seconds = 604800, lifecycle_events = true, max_members = 1000 },
    { pattern = "room/*", history_size = 100, history_ttl_seconds = 3600, join_leave = true, max_members = 50 },
  ]

  create_notifications_topic = false
  notifications_topic_arn    = aws_sns_topic.notifications.arn

  limits = {
    throttling_rate_limit  = 200
    throttling_burst_limit = 100
    pusher_max_concurrency = 5
  }
  log_retention_days = 90
  alarm_actions      = [aws_sns_topic.alarms.arn]
  dashboard          = true # the default; false leaves the CloudWatch dashboard out
  tags               = { team = "chat" }
}

output "websocket_url" {
  description = "Where clients connect."
  value       = module.sumu.websocket_url
}
