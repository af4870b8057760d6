terraform {
  required_version = ">= 1.9"

  required_providers {
    aws = {
      source = "hashicorp/aws"
      # 5.75.1 (November 11, 2024) is the first release with aws_api_gateway_account's
      # reset_on_delete (main.tf), per the provider's CHANGELOG: "resource/aws_api_gateway_account:
      # Add attribute `reset_on_delete` to properly reset CloudWatch Role ARN on deletion.
      # (#40004)". Older 5.x releases reject the argument. 6.0 removes it (resetting becomes the
      # default), hence the upper bound.
      version = ">= 5.75.1, < 6.0"
    }
  }
}
