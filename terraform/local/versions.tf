terraform {
  required_version = ">= 1.9"

  # State in terraform.tfstate here by default; scripts/test points it at a temporary file
  # (terraform init -backend-config=path=…).
  backend "local" {}

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.30, < 6.0"
    }
  }
}
