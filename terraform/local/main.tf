# The local stack: modules/sumu applied to an AWS-compatible endpoint on this machine (moto), with
# the Lambdas built from this repository. sumu-local plays API Gateway and the event sources
# against these resources, so the module attaches no event source here.

provider "aws" {
  region     = var.region
  access_key = "test"
  secret_key = "test"

  skip_credentials_validation = true
  skip_metadata_api_check     = true
  skip_region_validation      = true
  # The provider asks STS for the account id; STS is the emulator's too, so ARNs carry one.
  skip_requesting_account_id = false

  endpoints {
    apigateway     = var.endpoint
    apigatewayv2   = var.endpoint
    cloudwatch     = var.endpoint
    cloudwatchlogs = var.endpoint
    dynamodb       = var.endpoint
    iam            = var.endpoint
    kms            = var.endpoint
    lambda         = var.endpoint
    sns            = var.endpoint
    sqs            = var.endpoint
    sts            = var.endpoint
  }
}

locals {
  lambda_zip_dir = coalesce(var.lambda_zip_dir, "${path.module}/../../target/lambda")
}

module "sumu" {
  source = "../../modules/sumu"

  name  = var.name
  stage = var.stage

  # sumu-local's development issuer (`sumu-local token` mints its tokens).
  issuers = [{
    issuer    = "sumu-local"
    jwks_uri  = "${var.sumu_local_url}/.well-known/jwks.json"
    audiences = ["sumu-local"]
  }]

  lambda_zips = {
    authorizer = "${local.lambda_zip_dir}/authorizer/bootstrap.zip"
    presence   = "${local.lambda_zip_dir}/presence/bootstrap.zip"
    pusher     = "${local.lambda_zip_dir}/pusher/bootstrap.zip"
  }

  # sumu-local polls the stream and the queue and receives the topic itself; moto would otherwise
  # drain the stream into a Lambda it cannot run. moto does not keep Lambda logging_config either.
  attach_event_sources = false
  lambda_json_logging  = false

  presence_destination = var.presence_destination
  channel_namespaces   = var.channel_namespaces

  log_retention_days = 1
  tags               = { environment = "local" }
}
