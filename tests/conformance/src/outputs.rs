//! What the suite needs to know about a deployment, read from `terraform output -json`.

use serde_json::Value;

/// The public endpoints of a deployment: the names are `terraform/aws`'s outputs (and the
/// module's, `modules/sumu`); a configuration of your own exposes the same names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outputs {
    /// `wss://…/{stage}` (locally `ws://127.0.0.1:PORT/dev`).
    pub websocket_url: String,
    /// Where `send` (and, through the topic's subscription, `publish`) arrive.
    pub messages_queue_url: String,
    pub messages_topic_arn: Option<String>,
    /// Where notification requests go.
    pub notifications_queue_url: String,
    pub notifications_topic_arn: Option<String>,
    /// The pusher's dead-letter queue: only the oversized-notification check reads it.
    pub notifications_dlq_url: Option<String>,
    pub region: Option<String>,
}

impl Outputs {
    /// Parses `terraform output -json` (`{"name":{"value":…,"type":…,"sensitive":…},…}`); a
    /// plain `{"name":"value",…}` object is accepted too, for hand-written files.
    pub fn from_json(text: &str) -> Result<Outputs, String> {
        let document: Value = serde_json::from_str(text).map_err(|error| {
            format!(
                "the outputs are not JSON ({error}): pass the output of `terraform output -json`"
            )
        })?;
        let Value::Object(map) = document else {
            return Err(
                "the outputs are not a JSON object: pass the output of `terraform output -json`"
                    .into(),
            );
        };
        let optional = |name: &str| -> Result<Option<String>, String> {
            let value = match map.get(name) {
                None => return Ok(None),
                Some(Value::Object(output)) => output.get("value").unwrap_or(&Value::Null),
                Some(plain) => plain,
            };
            match value {
                Value::Null => Ok(None),
                Value::String(text) if !text.is_empty() => Ok(Some(text.clone())),
                other => Err(format!(
                    "the output {name} is {other}, not a non-empty string"
                )),
            }
        };
        let required = |name: &str| -> Result<String, String> {
            optional(name)?.ok_or_else(|| {
                format!("the outputs have no {name}: run `terraform output -json` in the configuration that applied sumu (terraform/aws has it), or add an output named {name}")
            })
        };
        Ok(Outputs {
            websocket_url: required("websocket_url")?,
            messages_queue_url: required("messages_queue_url")?,
            messages_topic_arn: optional("messages_topic_arn")?,
            notifications_queue_url: required("notifications_queue_url")?,
            notifications_topic_arn: optional("notifications_topic_arn")?,
            notifications_dlq_url: optional("notifications_dlq_url")?,
            region: optional("region")?,
        })
    }

    /// Whether the WebSocket URL is on this machine (sumu-local): the broadcast check runs by
    /// default only there, since on a deployment a broadcast reaches every connected user.
    pub fn is_local(&self) -> bool {
        let rest = self
            .websocket_url
            .split_once("://")
            .map_or(self.websocket_url.as_str(), |(_, rest)| rest);
        let host = rest.split(['/', '?']).next().unwrap_or_default();
        let host = host.rsplit_once(':').map_or(host, |(host, _port)| host);
        matches!(host, "127.0.0.1" | "localhost" | "[::1]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TERRAFORM: &str = r#"{
      "websocket_url": {"sensitive": false, "type": "string", "value": "wss://abc.execute-api.eu-west-1.amazonaws.com/live"},
      "messages_queue_url": {"sensitive": false, "type": "string", "value": "https://sqs.eu-west-1.amazonaws.com/1/m"},
      "messages_topic_arn": {"sensitive": false, "type": "string", "value": "arn:aws:sns:eu-west-1:1:m"},
      "notifications_queue_url": {"sensitive": false, "type": "string", "value": "https://sqs.eu-west-1.amazonaws.com/1/n"},
      "notifications_topic_arn": {"sensitive": false, "type": "string", "value": "arn:aws:sns:eu-west-1:1:n"},
      "custom_domain_websocket_url": {"sensitive": false, "type": "string", "value": null},
      "region": {"sensitive": false, "type": "string", "value": "eu-west-1"}
    }"#;

    #[test]
    fn terraform_outputs_are_read_by_name() {
        let outputs = Outputs::from_json(TERRAFORM).expect("parse");
        assert_eq!(
            outputs.websocket_url,
            "wss://abc.execute-api.eu-west-1.amazonaws.com/live"
        );
        assert_eq!(
            outputs.messages_queue_url,
            "https://sqs.eu-west-1.amazonaws.com/1/m"
        );
        assert_eq!(outputs.notifications_dlq_url, None);
        assert_eq!(outputs.region.as_deref(), Some("eu-west-1"));
        assert!(!outputs.is_local());
    }

    #[test]
    fn a_missing_output_is_named() {
        let error = Outputs::from_json(r#"{"websocket_url":"ws://127.0.0.1:1/dev"}"#)
            .expect_err("messages_queue_url is missing");
        assert!(error.contains("no messages_queue_url"), "{error}");
    }

    #[test]
    fn plain_values_and_loopback_urls() {
        let outputs = Outputs::from_json(
            r#"{"websocket_url":"ws://127.0.0.1:8080/dev","messages_queue_url":"q","notifications_queue_url":"n"}"#,
        )
        .expect("parse");
        assert!(outputs.is_local());
        assert_eq!(outputs.messages_topic_arn, None);
    }

    #[test]
    fn not_json_says_what_to_pass() {
        let error = Outputs::from_json("websocket_url = wss://x").expect_err("not JSON");
        assert!(error.contains("terraform output -json"), "{error}");
    }
}
