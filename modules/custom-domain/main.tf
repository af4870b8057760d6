# A custom domain for a sumu WebSocket API: wss://{domain_name}/{api_mapping_key}.

resource "aws_apigatewayv2_domain_name" "this" {
  domain_name = var.domain_name

  domain_name_configuration {
    certificate_arn = var.certificate_arn
    endpoint_type   = "REGIONAL" # the only endpoint type WebSocket APIs support
    security_policy = "TLS_1_2"
  }

  tags = var.tags
}

resource "aws_apigatewayv2_api_mapping" "this" {
  api_id          = var.api_id
  domain_name     = aws_apigatewayv2_domain_name.this.id
  stage           = var.stage
  api_mapping_key = var.api_mapping_key
}

resource "aws_route53_record" "this" {
  for_each = var.create_route53_records ? toset(["A", "AAAA"]) : toset([])

  zone_id = var.hosted_zone_id
  name    = aws_apigatewayv2_domain_name.this.domain_name
  type    = each.key

  alias {
    name                   = aws_apigatewayv2_domain_name.this.domain_name_configuration[0].target_domain_name
    zone_id                = aws_apigatewayv2_domain_name.this.domain_name_configuration[0].hosted_zone_id
    evaluate_target_health = false
  }
}
