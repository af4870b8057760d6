# The custom-domain module against a mocked AWS provider. Run from modules/custom-domain: `terraform test`.

mock_provider "aws" {
  mock_resource "aws_apigatewayv2_domain_name" {
    defaults = {
      id = "ws.example.com"
      domain_name_configuration = {
        target_domain_name = "d-abc123.execute-api.eu-west-1.amazonaws.com"
        hosted_zone_id     = "ZLY8HYME6SFDD"
      }
    }
  }
}

variables {
  domain_name     = "ws.example.com"
  certificate_arn = "arn:aws:acm:eu-west-1:123456789012:certificate/abc"
  api_id          = "abc123"
  stage           = "live"
  hosted_zone_id  = "Z0123456789ABCDEFGHIJ"
}

run "regional_tls12_domain_with_alias_records" {
  command = apply

  assert {
    condition = (
      aws_apigatewayv2_domain_name.this.domain_name_configuration[0].endpoint_type == "REGIONAL"
      && aws_apigatewayv2_domain_name.this.domain_name_configuration[0].security_policy == "TLS_1_2"
      && aws_apigatewayv2_domain_name.this.domain_name_configuration[0].certificate_arn == var.certificate_arn
    )
    error_message = "The domain must be regional, TLS 1.2, with the given certificate."
  }
  assert {
    condition     = aws_apigatewayv2_api_mapping.this.api_id == "abc123" && aws_apigatewayv2_api_mapping.this.stage == "live" && aws_apigatewayv2_api_mapping.this.api_mapping_key == null
    error_message = "The mapping must serve the API's stage at the domain's root."
  }
  assert {
    condition     = toset(keys(aws_route53_record.this)) == toset(["A", "AAAA"])
    error_message = "A and AAAA alias records must exist."
  }
  assert {
    condition = alltrue([for r in aws_route53_record.this :
      r.zone_id == var.hosted_zone_id && r.alias[0].name == "d-abc123.execute-api.eu-west-1.amazonaws.com" && r.alias[0].zone_id == "ZLY8HYME6SFDD"
    ])
    error_message = "The records must alias the regional API Gateway endpoint."
  }
  assert {
    condition     = output.websocket_url == "wss://ws.example.com"
    error_message = "websocket_url must be the domain's root."
  }
}

run "mapping_key_and_external_dns" {
  command = apply

  variables {
    api_mapping_key        = "v1"
    create_route53_records = false
    hosted_zone_id         = null
  }

  assert {
    condition     = length(aws_route53_record.this) == 0 && output.websocket_url == "wss://ws.example.com/v1"
    error_message = "Without Route 53 no record is created; the URL carries the mapping key."
  }
}

run "invalid_domain_name" {
  command = plan
  variables {
    domain_name = "https://ws.example.com"
  }
  expect_failures = [var.domain_name]
}

run "certificate_arn_not_acm" {
  command = plan
  variables {
    certificate_arn = "arn:aws:iam::123456789012:server-certificate/x"
  }
  expect_failures = [var.certificate_arn]
}

run "nested_mapping_key" {
  command = plan
  variables {
    api_mapping_key = "v1/ws"
  }
  expect_failures = [var.api_mapping_key]
}

run "route53_without_zone" {
  command = plan
  variables {
    hosted_zone_id = null
  }
  expect_failures = [var.hosted_zone_id]
}
