variable "domain_name" {
  description = "The custom domain clients connect to, e.g. ws.example.com."
  type        = string

  validation {
    condition     = can(regex("^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\\.)+[a-z]{2,63}$", var.domain_name))
    error_message = "domain_name must be a lower-case fully qualified domain name such as ws.example.com."
  }
}

variable "certificate_arn" {
  description = "ARN of an ACM certificate for domain_name, in the API's region (regional endpoint)."
  type        = string

  validation {
    condition     = can(regex("^arn:[^:]+:acm:[^:]+:[0-9]{12}:certificate/.+$", var.certificate_arn))
    error_message = "certificate_arn must be an ACM certificate ARN (arn:aws:acm:REGION:ACCOUNT:certificate/ID)."
  }
}

variable "api_id" {
  description = "ID of the WebSocket API (modules/sumu output api_id)."
  type        = string
}

variable "stage" {
  description = "Stage of the API the domain maps to (modules/sumu output stage)."
  type        = string
}

variable "api_mapping_key" {
  description = "Path under the domain the stage is served at; null serves it at the root (wss://domain/)."
  type        = string
  default     = null

  validation {
    condition     = var.api_mapping_key == null || can(regex("^[A-Za-z0-9_.-]+$", var.api_mapping_key))
    error_message = "api_mapping_key must be a single path segment of letters, digits, '.', '_' or '-' (WebSocket APIs allow no nested mappings)."
  }
}

variable "create_route53_records" {
  description = "Create Route 53 alias records (A and AAAA) for the domain. Set false to manage DNS elsewhere (then point a CNAME at the output target_domain_name)."
  type        = bool
  default     = true
}

variable "hosted_zone_id" {
  description = "Route 53 hosted zone that holds domain_name; required with create_route53_records."
  type        = string
  default     = null

  validation {
    condition     = !var.create_route53_records || var.hosted_zone_id != null
    error_message = "hosted_zone_id is required when create_route53_records = true."
  }
}

variable "tags" {
  description = "Tags added to the domain name."
  type        = map(string)
  default     = {}
  nullable    = false
}
