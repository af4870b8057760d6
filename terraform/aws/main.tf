# The whole sumu stack in your AWS account, built from this repository: the module, the Lambdas
# from `scripts/build-lambdas` (target/lambda/*/bootstrap.zip), an optional demo identity provider
# (Cognito) so you can connect right away, the demo back end (demo_backend.tf), alarms delivered by
# e-mail, an optional custom domain.
# README.md walks through it step by step.

provider "aws" {
  region = var.region

  default_tags {
    tags = var.tags
  }
}

# --- A demo identity provider: a Cognito user pool whose ID tokens carry aud = the app client id.
resource "aws_cognito_user_pool" "demo" {
  count = var.create_demo_user_pool ? 1 : 0

  name = "${var.name}-demo-users"

  password_policy {
    minimum_length    = 12
    require_lowercase = true
    require_numbers   = true
    require_symbols   = false
    require_uppercase = true
  }

  admin_create_user_config {
    allow_admin_create_user_only = true
  }
}

resource "aws_cognito_user_pool_client" "demo" {
  count = var.create_demo_user_pool ? 1 : 0

  name                = "${var.name}-demo-client"
  user_pool_id        = aws_cognito_user_pool.demo[0].id
  generate_secret     = false
  explicit_auth_flows = ["ALLOW_ADMIN_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"]
  id_token_validity   = 60
  token_validity_units {
    id_token = "minutes"
  }
}

locals {
  demo_issuer = var.create_demo_user_pool ? [{
    issuer    = "https://${aws_cognito_user_pool.demo[0].endpoint}"
    jwks_uri  = "https://${aws_cognito_user_pool.demo[0].endpoint}/.well-known/jwks.json"
    audiences = [aws_cognito_user_pool_client.demo[0].id]
  }] : []
}

# --- Stage logging needs the region's API Gateway CloudWatch Logs role (one per account and region).
resource "aws_iam_role" "api_gateway_cloudwatch" {
  count = var.manage_api_gateway_account ? 1 : 0

  name = "${var.name}-apigateway-cloudwatch"
  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Action    = "sts:AssumeRole"
      Principal = { Service = "apigateway.amazonaws.com" }
    }]
  })
}

resource "aws_iam_role_policy_attachment" "api_gateway_cloudwatch" {
  count = var.manage_api_gateway_account ? 1 : 0

  role       = aws_iam_role.api_gateway_cloudwatch[0].name
  policy_arn = "arn:aws:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs"
}

resource "aws_api_gateway_account" "this" {
  count = var.manage_api_gateway_account ? 1 : 0

  cloudwatch_role_arn = aws_iam_role.api_gateway_cloudwatch[0].arn
  # On destroy, clear the region's setting instead of leaving it pointing at the role destroyed
  # with this configuration (the provider's default before 6.0 only forgets it in state).
  reset_on_delete = true
  depends_on      = [aws_iam_role_policy_attachment.api_gateway_cloudwatch]
}

# --- Alarms go to a topic; subscribe an e-mail address to it if you like.
# Encrypted with a customer managed key: CloudWatch alarms cannot publish to a topic encrypted
# with the AWS managed key alias/aws/sns, whose policy no one can change (SNS developer guide,
# "Enable compatibility between event sources from AWS services and encrypted topics"). The key's
# policy lets the account administer it and CloudWatch use it.
resource "aws_kms_key" "alarms" {
  description             = "${var.name}: encrypts the alarms topic; CloudWatch may use it to publish"
  enable_key_rotation     = true
  deletion_window_in_days = 7
}

resource "aws_kms_alias" "alarms" {
  name          = "alias/${var.name}-alarms"
  target_key_id = aws_kms_key.alarms.key_id
}

locals {
  # From the topic's ARN, so planning needs no STS call (arn:PARTITION:sns:REGION:ACCOUNT:NAME).
  alarms_arn_parts = split(":", aws_sns_topic.alarms.arn)
  alarms_partition = local.alarms_arn_parts[1]
  alarms_account   = local.alarms_arn_parts[4]
}

resource "aws_kms_key_policy" "alarms" {
  key_id = aws_kms_key.alarms.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "AccountAdministersTheKey"
        Effect    = "Allow"
        Principal = { AWS = "arn:${local.alarms_partition}:iam::${local.alarms_account}:root" }
        Action    = "kms:*"
        Resource  = "*"
      },
      {
        Sid       = "CloudWatchAlarmsPublishToTheTopic"
        Effect    = "Allow"
        Principal = { Service = "cloudwatch.amazonaws.com" }
        Action    = ["kms:Decrypt", "kms:GenerateDataKey*"]
        Resource  = "*"
      },
    ]
  })
}

resource "aws_sns_topic" "alarms" {
  name              = "${var.name}-alarms"
  kms_master_key_id = aws_kms_key.alarms.arn
}

# CloudWatch also needs the topic's own policy to allow it (the default policy allows the account).
resource "aws_sns_topic_policy" "alarms" {
  arn = aws_sns_topic.alarms.arn
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "AccountManagesTheTopic"
        Effect    = "Allow"
        Principal = { AWS = "arn:${local.alarms_partition}:iam::${local.alarms_account}:root" }
        Action    = ["sns:Publish", "sns:Subscribe", "sns:GetTopicAttributes", "sns:SetTopicAttributes", "sns:ListSubscriptionsByTopic"]
        Resource  = aws_sns_topic.alarms.arn
      },
      {
        Sid       = "CloudWatchAlarmsPublish"
        Effect    = "Allow"
        Principal = { Service = "cloudwatch.amazonaws.com" }
        Action    = "sns:Publish"
        Resource  = aws_sns_topic.alarms.arn
        Condition = { StringEquals = { "aws:SourceAccount" = local.alarms_account } }
      },
    ]
  })
}

resource "aws_sns_topic_subscription" "alarm_email" {
  count = var.alarm_email == null ? 0 : 1

  topic_arn = aws_sns_topic.alarms.arn
  protocol  = "email"
  endpoint  = var.alarm_email
}

# Lambda packages (scripts/build-lambdas): <lambda_zip_dir>/<function>/bootstrap.zip.
locals {
  lambda_zip_dir = coalesce(var.lambda_zip_dir, "${path.module}/../../target/lambda")
}

module "sumu" {
  source = "../../modules/sumu"

  name                 = var.name
  stage                = var.stage
  issuers              = concat(var.issuers, local.demo_issuer)
  presence_destination = var.presence_destination
  channel_namespaces   = var.channel_namespaces
  dashboard            = var.dashboard
  alarm_actions        = [aws_sns_topic.alarms.arn]
  # The channels the conformance suite (tests/conformance) subscribes to and emits on; nothing
  # else is granted to every connection (docs/deploying.md § Check a deployment).
  channels = {
    static_subscribe = var.conformance_grants ? ["conformance/*"] : []
    static_publish   = var.conformance_grants ? ["conformance/*"] : []
  }
  lambda_zips = {
    authorizer = "${local.lambda_zip_dir}/authorizer/bootstrap.zip"
    presence   = "${local.lambda_zip_dir}/presence/bootstrap.zip"
    pusher     = "${local.lambda_zip_dir}/pusher/bootstrap.zip"
  }

  depends_on = [aws_api_gateway_account.this]
}

module "custom_domain" {
  source = "../../modules/custom-domain"
  count  = var.custom_domain == null ? 0 : 1

  domain_name     = var.custom_domain.domain_name
  certificate_arn = var.custom_domain.certificate_arn
  hosted_zone_id  = var.custom_domain.hosted_zone_id
  api_id          = module.sumu.api_id
  stage           = module.sumu.stage
}
