terraform {
  # 1.9: validation rules may refer to other variables (the cross-field rules in variables.tf).
  required_version = ">= 1.9"

  required_providers {
    aws = {
      source = "hashicorp/aws"
      # 5.x: aws_sqs_queue_redrive_policy, Lambda logging_config, SQS event source scaling_config.
      version = ">= 5.30, < 6.0"
    }
  }
}
