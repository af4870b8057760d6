# Presence and the dashboard through the root configuration: members tracking namespaces with a
# cap reach the module, the members table and the dashboard are outputs, and `dashboard = false`
# passes through. The module's own tests check the resources. Mocked AWS provider.
# Run from terraform/aws: `terraform test`.

mock_provider "aws" {
  source = "../../modules/sumu/tests"
}

variables {
  name                = "sumu-test"
  lambda_zip_dir      = "tests/fixtures/lambda"
  create_demo_backend = false
}

run "members_and_dashboard" {
  command = apply

  variables {
    channel_namespaces = [{ pattern = "room/*", join_leave = true, lifecycle_events = true, max_members = 250 }]
  }

  assert {
    condition     = output.members_table_name == "sumu-test-members"
    error_message = "The members table is an output."
  }
  assert {
    condition     = output.dashboard_name == "sumu-test"
    error_message = "The dashboard is created by default and named after the stack."
  }
  assert {
    condition     = var.channel_namespaces[0].max_members == 250
    error_message = "max_members reaches the module as given."
  }
}

run "default_max_members" {
  command = plan

  variables {
    channel_namespaces = [{ pattern = "room/*", join_leave = true }]
  }

  assert {
    condition     = var.channel_namespaces[0].max_members == 100
    error_message = "max_members defaults to 100, as in the module."
  }
}

run "dashboard_opt_out" {
  command = apply

  variables {
    dashboard = false
  }

  assert {
    condition     = output.dashboard_name == null
    error_message = "dashboard = false reaches the module: no dashboard."
  }
}
