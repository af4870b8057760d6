# The stack the conformance suite checks (docs/deploying.md § Check a deployment), against a
# mocked AWS provider. Run from terraform/aws: `terraform test`.

mock_provider "aws" {
  source = "../../modules/sumu/tests"
}

variables {
  name                = "sumu-test"
  lambda_zip_dir      = "tests/fixtures/lambda"
  create_demo_backend = false
  conformance_grants  = true
}

run "applies_with_the_conformance_grants" {
  command = apply

  # The module's own validation of the static grants runs on these values at plan.
  assert {
    condition     = output.notifications_dlq_url == module.sumu.notifications_dlq_url && output.notifications_dlq_url != null
    error_message = "The suite reads the pusher's dead-letter queue from the notifications_dlq_url output."
  }
  assert {
    condition     = output.messages_queue_url != null && output.notifications_queue_url != null && output.websocket_url != null && output.region == "eu-west-1"
    error_message = "The suite reads the WebSocket URL, the queues and the region from these outputs."
  }
}

run "conformance_grants_are_off_by_default" {
  command = plan

  variables {
    conformance_grants = null
  }

  assert {
    condition     = var.conformance_grants == false
    error_message = "A deployment grants nobody conformance/* unless asked to."
  }
}
