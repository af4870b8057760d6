terraform {
  # 1.9: validation rules may refer to other variables (the cross-field rules in variables.tf).
  required_version = ">= 1.9"

  required_providers {
    aws = {
      source = "hashicorp/aws"
      # 5.32.0 (January 11, 2024) added aws_lambda_function's logging_config (the provider's
      # CHANGELOG: "Add `logging_config` configuration block in support of advanced logging
      # controls"); aws_sqs_queue_redrive_policy and the SQS event source's scaling_config are older.
      version = ">= 5.32, < 6.0"
    }
  }
}
