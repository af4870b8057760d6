//! Pure protocol logic: connection and request ids, route selection, the frames API Gateway
//! sends on its own, the `$context` object templates see, and AWS's time formats. No I/O.

use base64::Engine;
use serde_json::{json, Map, Value};

use crate::state::{Identity, Principal};

/// Route key of the fallback route.
pub const DEFAULT_ROUTE: &str = "$default";
pub const CONNECT_ROUTE: &str = "$connect";
pub const DISCONNECT_ROUTE: &str = "$disconnect";

/// A new connection id shaped like API Gateway's (16 characters ending in `=`, e.g.
/// `L0SM9cOFvHcCIhw=`), so clients and back ends meet the padding that must be
/// percent-encoded in `@connections` URLs. URL-safe alphabet: never a `/`.
pub fn new_connection_id() -> String {
    let bytes: [u8; 11] = rand::random();
    base64::engine::general_purpose::URL_SAFE.encode(bytes)
}

pub fn new_request_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// A route selection expression of the form `$request.body.<path>` (dotted JSON path), the only
/// form sumu uses and the common one on AWS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelectionExpression {
    path: Vec<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unsupported route selection expression {0:?}: expected $request.body.<path>")]
pub struct UnsupportedExpression(pub String);

impl SelectionExpression {
    pub fn parse(expression: &str) -> Result<SelectionExpression, UnsupportedExpression> {
        let path = expression
            .strip_prefix("$request.body.")
            .ok_or_else(|| UnsupportedExpression(expression.to_string()))?;
        let path: Vec<String> = path.split('.').map(str::to_string).collect();
        if path.iter().any(|segment| segment.is_empty()) {
            return Err(UnsupportedExpression(expression.to_string()));
        }
        Ok(SelectionExpression { path })
    }

    /// The route key a message selects, or `None` when the body is not JSON, the path is
    /// missing or null (API Gateway then uses `$default`). Non-string values are stringified.
    pub fn evaluate(&self, body: &str) -> Option<String> {
        let document: Value = serde_json::from_str(body).ok()?;
        let mut value = &document;
        for segment in &self.path {
            value = value.as_object()?.get(segment)?;
        }
        match value {
            Value::Null => None,
            Value::String(text) => Some(text.clone()),
            other => Some(other.to_string()),
        }
    }
}

/// Picks the route for a message: the selected key when such a route exists, else `$default`
/// when it exists, else `None` (API Gateway then answers with a `Forbidden` frame).
pub fn select_route(
    expression: &SelectionExpression,
    body: &str,
    has_route: impl Fn(&str) -> bool,
) -> Option<String> {
    match expression.evaluate(body) {
        Some(key) if key != CONNECT_ROUTE && key != DISCONNECT_ROUTE && has_route(&key) => {
            Some(key)
        }
        _ if has_route(DEFAULT_ROUTE) => Some(DEFAULT_ROUTE.to_string()),
        _ => None,
    }
}

/// The frames API Gateway itself sends to a client.
pub const FORBIDDEN: &str = "Forbidden";
pub const INTERNAL_SERVER_ERROR: &str = "Internal server error";

/// `{"message":"Forbidden","connectionId":"…","requestId":"…"}`, exactly as API Gateway.
pub fn error_frame(message: &str, connection_id: &str, request_id: &str) -> String {
    json!({"message": message, "connectionId": connection_id, "requestId": request_id}).to_string()
}

/// API Gateway's `$context.eventType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Connect,
    Message,
    Disconnect,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Connect => "CONNECT",
            EventType::Message => "MESSAGE",
            EventType::Disconnect => "DISCONNECT",
        }
    }
}

/// Where the API lives, for `$context` (`stage`, `apiId`, `domainName`).
#[derive(Debug, Clone)]
pub struct ApiInfo {
    pub api_id: String,
    pub stage: String,
    pub domain_name: String,
}

/// Everything `$context` is built from for one request.
#[derive(Debug, Clone)]
pub struct RequestContext<'a> {
    pub api: &'a ApiInfo,
    pub event_type: EventType,
    pub route_key: &'a str,
    pub connection_id: &'a str,
    pub connected_at: i64,
    pub request_id: &'a str,
    /// Set for MESSAGE events.
    pub message_id: Option<&'a str>,
    pub request_time_epoch: i64,
    pub identity: &'a Identity,
    /// Absent before the authorizer ran.
    pub principal: Option<&'a Principal>,
    /// `(disconnectStatusCode, disconnectReason)` for DISCONNECT events.
    pub disconnect: Option<(u16, &'a str)>,
}

impl RequestContext<'_> {
    /// The `$context` object of API Gateway's WebSocket mapping-template reference.
    pub fn to_value(&self) -> Value {
        let mut context = Map::new();
        context.insert("connectionId".into(), self.connection_id.into());
        context.insert("connectedAt".into(), self.connected_at.into());
        context.insert("domainName".into(), self.api.domain_name.as_str().into());
        context.insert("stage".into(), self.api.stage.as_str().into());
        context.insert("apiId".into(), self.api.api_id.as_str().into());
        context.insert("eventType".into(), self.event_type.as_str().into());
        if let Some(message_id) = self.message_id {
            context.insert("messageId".into(), message_id.into());
        }
        context.insert("messageDirection".into(), "IN".into());
        context.insert("routeKey".into(), self.route_key.into());
        context.insert("requestId".into(), self.request_id.into());
        context.insert("extendedRequestId".into(), self.request_id.into());
        context.insert(
            "requestTime".into(),
            common_log_time(self.request_time_epoch).into(),
        );
        context.insert("requestTimeEpoch".into(), self.request_time_epoch.into());
        context.insert(
            "identity".into(),
            json!({"sourceIp": self.identity.source_ip, "userAgent": self.identity.user_agent}),
        );
        if let Some(principal) = self.principal {
            let mut authorizer = principal.context.clone();
            authorizer.insert("principalId".into(), principal.principal_id.as_str().into());
            context.insert("authorizer".into(), Value::Object(authorizer));
        }
        if let Some((code, reason)) = self.disconnect {
            context.insert("disconnectStatusCode".into(), code.into());
            context.insert("disconnectReason".into(), reason.into());
        }
        Value::Object(context)
    }
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Civil date from days since 1970-01-01 (Howard Hinnant's algorithm): (year, month, day).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

struct Civil {
    year: i64,
    month: u32,
    day: u32,
    hour: i64,
    minute: i64,
    second: i64,
    millis: i64,
}

fn civil(epoch_ms: i64) -> Civil {
    let days = epoch_ms.div_euclid(86_400_000);
    let in_day = epoch_ms.rem_euclid(86_400_000);
    let (year, month, day) = civil_from_days(days);
    Civil {
        year,
        month,
        day,
        hour: in_day / 3_600_000,
        minute: in_day / 60_000 % 60,
        second: in_day / 1000 % 60,
        millis: in_day % 1000,
    }
}

/// ISO-8601 in UTC with milliseconds, as the management API's `GetConnection` returns.
pub fn iso8601(epoch_ms: i64) -> String {
    let c = civil(epoch_ms);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        c.year, c.month, c.day, c.hour, c.minute, c.second, c.millis
    )
}

/// `$context.requestTime`: common log format, `21/Nov/2026:21:03:00 +0000`.
pub fn common_log_time(epoch_ms: i64) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let c = civil(epoch_ms);
    let month = MONTHS
        .get(c.month.saturating_sub(1) as usize)
        .copied()
        .unwrap_or("Jan");
    format!(
        "{:02}/{}/{:04}:{:02}:{:02}:{:02} +0000",
        c.day, month, c.year, c.hour, c.minute, c.second
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn routes<'a>(keys: &'a [&'static str]) -> impl Fn(&str) -> bool + 'a {
        move |key| keys.contains(&key)
    }

    fn select(body: &str, keys: &[&'static str]) -> Option<String> {
        let expression = SelectionExpression::parse("$request.body.action").unwrap();
        select_route(&expression, body, routes(keys))
    }

    #[test]
    fn selects_the_action_route_and_falls_back_to_default() {
        let keys = ["ping", "$default"];
        assert_eq!(select(r#"{"action":"ping"}"#, &keys).unwrap(), "ping");
        assert_eq!(select(r#"{"action":"nope"}"#, &keys).unwrap(), "$default");
        assert_eq!(select("not json", &keys).unwrap(), "$default");
        assert_eq!(select(r#"{"action":null}"#, &keys).unwrap(), "$default");
        assert_eq!(select(r#"["ping"]"#, &keys).unwrap(), "$default");
        assert_eq!(select("", &keys).unwrap(), "$default");
    }

    #[test]
    fn a_message_cannot_select_connect_or_disconnect() {
        let keys = ["$connect", "$disconnect", "$default"];
        assert_eq!(
            select(r#"{"action":"$connect"}"#, &keys).unwrap(),
            "$default"
        );
        assert_eq!(
            select(r#"{"action":"$disconnect"}"#, &keys).unwrap(),
            "$default"
        );
    }

    #[test]
    fn without_default_nothing_is_selected() {
        assert_eq!(select(r#"{"action":"nope"}"#, &["ping"]), None);
        assert_eq!(select("garbage", &["ping"]), None);
    }

    #[test]
    fn non_string_values_are_stringified_and_paths_nest() {
        let expression = SelectionExpression::parse("$request.body.a.b").unwrap();
        assert_eq!(expression.evaluate(r#"{"a":{"b":7}}"#).unwrap(), "7");
        assert_eq!(expression.evaluate(r#"{"a":{"b":true}}"#).unwrap(), "true");
        assert_eq!(expression.evaluate(r#"{"a":1}"#), None);
    }

    #[test]
    fn unsupported_expressions_are_rejected() {
        assert!(SelectionExpression::parse("$request.header.x").is_err());
        assert!(SelectionExpression::parse("$request.body.").is_err());
    }

    #[test]
    fn error_frames_have_api_gateway_shape() {
        let frame: Value = serde_json::from_str(&error_frame(FORBIDDEN, "c=", "r")).unwrap();
        assert_eq!(
            frame,
            json!({"message":"Forbidden","connectionId":"c=","requestId":"r"})
        );
    }

    #[test]
    fn connection_ids_look_like_api_gateway_ids() {
        let id = new_connection_id();
        assert_eq!(id.len(), 16);
        assert!(id.ends_with('='));
        assert!(!id.contains('/'));
        assert_ne!(id, new_connection_id());
    }

    #[test]
    fn times_format_like_aws() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso8601(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
        assert_eq!(iso8601(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(
            common_log_time(1_700_000_000_123),
            "14/Nov/2023:22:13:20 +0000"
        );
    }

    #[test]
    fn context_carries_authorizer_and_disconnect_fields() {
        let api = ApiInfo {
            api_id: "api".into(),
            stage: "dev".into(),
            domain_name: "127.0.0.1:1".into(),
        };
        let identity = Identity {
            source_ip: "127.0.0.1".into(),
            user_agent: "ua".into(),
        };
        let mut claims = Map::new();
        claims.insert("role".into(), "admin".into());
        let principal = Principal {
            principal_id: "alice".into(),
            context: claims,
        };
        let context = RequestContext {
            api: &api,
            event_type: EventType::Disconnect,
            route_key: DISCONNECT_ROUTE,
            connection_id: "c=",
            connected_at: 5,
            request_id: "r",
            message_id: None,
            request_time_epoch: 1_700_000_000_000,
            identity: &identity,
            principal: Some(&principal),
            disconnect: Some((1001, "Going away")),
        }
        .to_value();
        assert_eq!(context["authorizer"]["principalId"], "alice");
        assert_eq!(context["authorizer"]["role"], "admin");
        assert_eq!(context["eventType"], "DISCONNECT");
        assert_eq!(context["disconnectStatusCode"], 1001);
        assert_eq!(context["identity"]["sourceIp"], "127.0.0.1");
        assert_eq!(context["requestTimeEpoch"], 1_700_000_000_000_i64);
        assert!(context.get("messageId").is_none());
    }
}
