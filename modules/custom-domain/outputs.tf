output "websocket_url" {
  description = "The URL clients connect to through the custom domain."
  value       = var.api_mapping_key == null ? "wss://${var.domain_name}" : "wss://${var.domain_name}/${var.api_mapping_key}"
}

output "domain_name" {
  description = "The custom domain name."
  value       = aws_apigatewayv2_domain_name.this.domain_name
}

output "target_domain_name" {
  description = "The regional API Gateway host the domain's DNS record must point at (for DNS managed outside Route 53)."
  value       = aws_apigatewayv2_domain_name.this.domain_name_configuration[0].target_domain_name
}

output "hosted_zone_id" {
  description = "Route 53 zone id of the regional API Gateway endpoint (for an alias record managed elsewhere)."
  value       = aws_apigatewayv2_domain_name.this.domain_name_configuration[0].hosted_zone_id
}

output "route53_record_fqdns" {
  description = "FQDNs of the alias records created (empty when create_route53_records = false)."
  value       = [for r in aws_route53_record.this : r.fqdn]
}
