# A custom domain (wss://ws.example.com) in front of a sumu stack. The certificate must be an ACM
# certificate for the domain in the API's region; the hosted zone must hold the domain.

terraform {
  required_version = ">= 1.9"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.30, < 6.0"
    }
  }
}

provider "aws" {
  region = "eu-west-1"
}

variable "api_id" {
  description = "The sumu module's api_id output."
  type        = string
}

variable "certificate_arn" {
  description = "ACM certificate for ws.example.com in eu-west-1."
  type        = string
}

variable "hosted_zone_id" {
  description = "Route 53 hosted zone of example.com."
  type        = string
}

module "custom_domain" {
  source = "../.."

  domain_name     = "ws.example.com"
  certificate_arn = var.certificate_arn
  hosted_zone_id  = var.hosted_zone_id
  api_id          = var.api_id
  stage           = "live"
}

output "websocket_url" {
  description = "wss://ws.example.com"
  value       = module.custom_domain.websocket_url
}
