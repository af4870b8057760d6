# channel_namespaces: none by default, and a list the module accepts applies; the module's own
# tests (modules/sumu/tests) check what reaches the Lambdas and every validation rule. Mocked
# AWS provider. Run from terraform/aws: `terraform test`.

mock_provider "aws" {
  source = "../../modules/sumu/tests"
}

variables {
  name                = "sumu-test"
  lambda_zip_dir      = "tests/fixtures/lambda"
  create_demo_backend = false
}

run "no_history_by_default" {
  command = plan

  assert {
    condition     = length(var.channel_namespaces) == 0
    error_message = "A deployment keeps no history unless asked to."
  }
}

run "namespaces_apply" {
  command = apply

  variables {
    channel_namespaces = [{ pattern = "room/*", history_size = 50, history_ttl_seconds = 600 }]
  }

  assert {
    condition     = output.history_table_name == "sumu-test-history"
    error_message = "The history table (always created) is an output."
  }
}
