//! Every template in `mapping-templates/` renders, with the example inputs, to what its
//! integration expects; trusted values come from `$context` only; and no identifier of a
//! table, topic or queue is written into a template. (The same bodies are sent to moto in
//! `local/sumu-local/tests/templates_against_moto.rs`.)

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::{json, Value};
use vtl::{RenderInput, Template};

fn templates_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../mapping-templates")
}

fn read(path: PathBuf) -> String {
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Renders `template` with `examples/<context>.context.json` and `examples/<body>.body.json`.
fn render_example(template: &str, context: &str, body: &str) -> String {
    let mut input: RenderInput = serde_json::from_str(&read(
        templates_dir().join(format!("examples/{context}.context.json")),
    ))
    .expect("example context deserializes");
    input.body = read(templates_dir().join(format!("examples/{body}.body.json")));
    render(template, &input)
}

fn render(template: &str, input: &RenderInput) -> String {
    let source = read(templates_dir().join(template));
    let parsed = Template::parse(&source).unwrap_or_else(|e| panic!("{template}: {e}"));
    parsed
        .render(input)
        .unwrap_or_else(|e| panic!("{template}: {e}"))
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}):\n{text}"))
}

/// Decodes an `application/x-www-form-urlencoded` body.
fn form(text: &str) -> BTreeMap<String, String> {
    fn decode(part: &str) -> String {
        let bytes = part.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while let Some(&b) = bytes.get(i) {
            match b {
                b'+' => out.push(b' '),
                b'%' => {
                    let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
                    out.push(u8::from_str_radix(hex, 16).unwrap());
                    i += 2;
                }
                _ => out.push(b),
            }
            i += 1;
        }
        String::from_utf8(out).unwrap()
    }
    assert!(
        !text.contains(['\n', '\r', ' ']),
        "form body has whitespace: {text:?}"
    );
    text.split('&')
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(key), decode(value))
        })
        .collect()
}

fn example_context(name: &str) -> Value {
    json(&read(
        templates_dir().join(format!("examples/{name}.context.json")),
    ))
}

#[test]
fn every_template_in_the_route_table_exists_and_parses() {
    let routes = json(&read(templates_dir().join("routes.json")));
    let mut names = Vec::new();
    for (route, definition) in routes["routes"].as_object().expect("routes") {
        if let Some(name) = definition["integration"]["request_template"].as_str() {
            names.push(name.to_owned());
        }
        // A null template: an integration response that only acknowledges.
        for name in definition["integration_responses"]
            .as_object()
            .expect(route)
            .values()
            .filter(|name| !name.is_null())
        {
            names.push(name.as_str().expect("template name").to_owned());
        }
    }
    assert_eq!(names.len(), 11, "{names:?}");
    for name in names {
        let source = read(templates_dir().join(&name));
        Template::parse(&source).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

#[test]
fn no_template_names_a_table_topic_or_queue() {
    for entry in std::fs::read_dir(templates_dir()).expect("directory") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|ext| ext == "vtl") {
            let source = read(path.clone());
            for literal in ["arn:aws", "sqs.", "amazonaws.com", "sumu-", "-connections"] {
                assert!(
                    !source.contains(literal),
                    "{} contains {literal}",
                    path.display()
                );
            }
        }
    }
}

#[test]
fn connect_puts_the_connection_item_with_typed_attributes() {
    let item = json(&render_example("connect.request.vtl", "connect", "empty"));
    let user_agent = example_context("connect")["context"]["identity"]["userAgent"].clone();
    assert_eq!(
        item,
        json!({
            "TableName": "sumu-dev-connections",
            "Item": {
                "user_id": {"S": "user-42"},
                "connection_id": {"S": "L0SM9cOFvHcCIhw="},
                "connected_at": {"N": "1700000000123"},
                // 1700000000123 ms → 1700000000 s, + 7200 s.
                "expires_at": {"N": "1700007200"},
                "source_ip": {"S": "203.0.113.7"},
                "user_agent": {"S": user_agent}
            }
        })
    );
}

#[test]
fn connect_renders_valid_json_without_a_user_agent_or_source_ip() {
    let mut input: RenderInput =
        serde_json::from_value(example_context("connect")).expect("deserializes");
    let identity = input.context["identity"].as_object_mut().expect("identity");
    identity.remove("userAgent");
    identity.remove("sourceIp");
    let item = json(&render("connect.request.vtl", &input));
    assert_eq!(item["Item"]["user_agent"], json!({"S": ""}));
    assert_eq!(item["Item"]["source_ip"], json!({"S": ""}));
    assert_eq!(item["Item"]["user_id"], json!({"S": "user-42"}));

    // No identity object at all, and explicit nulls, render the same.
    input
        .context
        .as_object_mut()
        .expect("context")
        .remove("identity");
    assert_eq!(
        json(&render("connect.request.vtl", &input))["Item"]["user_agent"],
        json!({"S": ""})
    );
    input.context["identity"] = json!({"sourceIp": null, "userAgent": null});
    assert_eq!(
        json(&render("connect.request.vtl", &input))["Item"]["source_ip"],
        json!({"S": ""})
    );
}

#[test]
fn hostile_context_strings_stay_inside_their_json_strings() {
    let mut input: RenderInput =
        serde_json::from_value(example_context("connect")).expect("deserializes");
    let hostile = "a\"}, \"admin\": {\"BOOL\": true}, \"x\": {\"S\": \"\\'\n\t\u{1}ü😀</script>";
    input.context["authorizer"]["principalId"] = json!(hostile);
    input.context["identity"]["userAgent"] = json!(hostile);
    input.context["connectionId"] = json!(hostile);
    for template in [
        "connect.request.vtl",
        "disconnect.request.vtl",
        "ping.request.vtl",
    ] {
        let rendered = json(&render(template, &input));
        let key = if template.starts_with("connect") {
            "Item"
        } else {
            "Key"
        };
        assert_eq!(rendered[key]["user_id"]["S"], json!(hostile), "{template}");
        assert_eq!(
            rendered[key]["connection_id"]["S"],
            json!(hostile),
            "{template}"
        );
        assert!(rendered[key].get("admin").is_none(), "{template}");
    }
    for template in [
        "ping.response.vtl",
        "ping.failed.response.vtl",
        "default.response.vtl",
    ] {
        let frame = json(&render(template, &input));
        assert_eq!(frame["connection_id"], json!(hostile), "{template}");
    }
}

#[test]
fn disconnect_deletes_by_both_keys() {
    assert_eq!(
        json(&render_example(
            "disconnect.request.vtl",
            "disconnect",
            "empty"
        )),
        json!({
            "TableName": "sumu-dev-connections",
            "Key": {"user_id": {"S": "user-42"}, "connection_id": {"S": "L0SM9cOFvHcCIhw="}}
        })
    );
}

#[test]
fn ping_updates_last_seen_only_if_the_item_exists() {
    let request = json(&render_example("ping.request.vtl", "ping", "ping"));
    assert_eq!(
        request["ConditionExpression"],
        "attribute_exists(connection_id)"
    );
    assert_eq!(request["UpdateExpression"], "SET last_seen_at = :now");
    assert_eq!(
        request["ExpressionAttributeValues"][":now"],
        json!({"N": "1700000060789"})
    );
    assert_eq!(request["Key"]["user_id"], json!({"S": "user-42"}));
}

#[test]
fn ping_answers_pong_or_tells_the_client_its_connection_is_gone() {
    assert_eq!(
        json(&render_example("ping.response.vtl", "ping", "empty")),
        json!({"type": "pong", "connection_id": "L0SM9cOFvHcCIhw=", "timestamp": 1_700_000_060_789_i64})
    );
    let gone = json(&render_example(
        "ping.gone.response.vtl",
        "ping",
        "ping.gone",
    ));
    assert_eq!(gone["type"], "error");
    assert_eq!(gone["error"], "connection_gone");
    assert!(gone["message"]
        .as_str()
        .expect("message")
        .contains("reconnect"));

    let mut input: RenderInput =
        serde_json::from_value(example_context("ping")).expect("deserializes");
    input.body = r#"{"__type":"com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException","message":"slow down"}"#.into();
    let throttled = json(&render("ping.gone.response.vtl", &input));
    assert_eq!(throttled["error"], "ping_failed");
    input.body = "not json".into();
    assert_eq!(
        json(&render("ping.gone.response.vtl", &input))["error"],
        "ping_failed"
    );

    // Anything but 2xx and 4xx (a DynamoDB 5xx) never answers pong.
    input.body = r#"{"__type":"com.amazonaws.dynamodb.v20120810#InternalServerError"}"#.into();
    let failed = json(&render("ping.failed.response.vtl", &input));
    assert_eq!(failed["type"], "error");
    assert_eq!(failed["error"], "ping_failed");
    assert_eq!(failed["connection_id"], "L0SM9cOFvHcCIhw=");
}

fn assert_trusted_attributes(
    fields: &BTreeMap<String, String>,
    prefix: &str,
    source: &str,
    epoch: &str,
) {
    let expected = [
        ("user_id", "String", "user-42"),
        ("connection_id", "String", "L0SM9cOFvHcCIhw="),
        ("timestamp", "Number", epoch),
        ("source", "String", source),
    ];
    for (n, (name, data_type, value)) in expected.iter().enumerate() {
        let n = n + 1;
        assert_eq!(fields[&format!("{prefix}.{n}.Name")], *name);
        assert_eq!(fields[&format!("{prefix}.{n}.Value.DataType")], *data_type);
        assert_eq!(fields[&format!("{prefix}.{n}.Value.StringValue")], *value);
    }
    assert_eq!(
        fields.keys().filter(|key| key.starts_with(prefix)).count(),
        12
    );
}

#[test]
fn publish_is_an_sns_publish_with_the_clients_message_and_trusted_attributes() {
    let rendered = render_example("publish.request.vtl", "publish", "publish");
    let fields = form(&rendered);
    assert_eq!(fields["Action"], "Publish");
    assert_eq!(fields["Version"], "2010-03-31");
    assert_eq!(
        fields["TopicArn"],
        "arn:aws:sns:eu-west-1:123456789012:sumu-dev-messages"
    );
    let body = json(&read(templates_dir().join("examples/publish.body.json")));
    assert_eq!(json(&fields["Message"]), body["message"]);
    // The client's "user_id"/"source" stay in its message; the attributes are the gateway's.
    assert_trusted_attributes(
        &fields,
        "MessageAttributes.entry",
        "apigw.route.publish",
        "1700000061000",
    );
}

#[test]
fn send_is_an_sqs_send_message_with_singular_message_attribute_names() {
    let rendered = render_example("send.request.vtl", "send", "send");
    assert!(
        !rendered.contains("MessageAttributes"),
        "SQS reads MessageAttribute.N"
    );
    let fields = form(&rendered);
    assert_eq!(fields["Action"], "SendMessage");
    assert_eq!(
        fields["QueueUrl"],
        "https://sqs.eu-west-1.amazonaws.com/123456789012/sumu-dev-messages"
    );
    let body = json(&read(templates_dir().join("examples/send.body.json")));
    assert_eq!(json(&fields["MessageBody"]), body["message"]);
    assert_trusted_attributes(
        &fields,
        "MessageAttribute",
        "apigw.route.send",
        "1700000062000",
    );
}

/// `send`/`publish` bodies whose `message` is not a JSON object.
const NOT_AN_OBJECT: [&str; 6] = [
    r#"{"action":"ROUTE"}"#,
    r#"{"action":"ROUTE","message":null}"#,
    r#"{"action":"ROUTE","message":"just text"}"#,
    r#"{"action":"ROUTE","message":42}"#,
    r#"{"action":"ROUTE","message":[1,2]}"#,
    r#"{"action":"ROUTE","message":true}"#,
];

/// The notification request a refused `send`/`publish` renders: the invalid_message frame for
/// the sender's connection only.
fn assert_refusal(request: &str, route: &str) {
    let request = json(request);
    assert_eq!(
        request["connections"],
        json!(["L0SM9cOFvHcCIhw="]),
        "{request}"
    );
    assert_eq!(request.as_object().expect("object").len(), 2, "{request}");
    let frame = &request["data"];
    assert_eq!(frame["type"], "error");
    assert_eq!(frame["error"], "invalid_message");
    assert_eq!(frame["connection_id"], "L0SM9cOFvHcCIhw=");
    assert!(frame["request_id"]
        .as_str()
        .is_some_and(|id| !id.is_empty()));
    assert!(frame["message"]
        .as_str()
        .expect("message")
        .starts_with(route));
}

#[test]
fn send_without_a_json_object_message_answers_the_sender_through_the_pusher_only() {
    let mut input: RenderInput =
        serde_json::from_value(example_context("send")).expect("deserializes");
    for body in NOT_AN_OBJECT {
        input.body = body.replace("ROUTE", "send");
        let fields = form(&render("send.request.vtl", &input));
        assert_eq!(fields["Action"], "SendMessage", "{body}");
        assert_eq!(
            fields["QueueUrl"],
            "https://sqs.eu-west-1.amazonaws.com/123456789012/sumu-dev-notifications",
            "{body}"
        );
        // One attribute: the data is a frame of sumu's own, delivered as it is.
        assert_eq!(fields.len(), 7, "one attribute: {fields:?}");
        assert_eq!(fields["MessageAttribute.1.Name"], "sumu_frame");
        assert_eq!(fields["MessageAttribute.1.Value.DataType"], "String");
        assert_eq!(fields["MessageAttribute.1.Value.StringValue"], "verbatim");
        assert_refusal(&fields["MessageBody"], "send");
    }
}

#[test]
fn publish_without_a_json_object_message_answers_the_sender_through_the_pusher_only() {
    let mut input: RenderInput =
        serde_json::from_value(example_context("publish")).expect("deserializes");
    for body in NOT_AN_OBJECT {
        input.body = body.replace("ROUTE", "publish");
        let fields = form(&render("publish.request.vtl", &input));
        assert_eq!(fields["Action"], "Publish", "{body}");
        assert_eq!(
            fields["TopicArn"], "arn:aws:sns:eu-west-1:123456789012:sumu-dev-notifications",
            "{body}"
        );
        assert_eq!(fields.len(), 7, "one attribute: {fields:?}");
        assert_eq!(fields["MessageAttributes.entry.1.Name"], "sumu_frame");
        assert_eq!(fields["MessageAttributes.entry.1.Value.DataType"], "String");
        assert_eq!(
            fields["MessageAttributes.entry.1.Value.StringValue"],
            "verbatim"
        );
        assert_refusal(&fields["Message"], "publish");
    }
}

#[test]
fn a_refusal_keeps_a_hostile_connection_id_inside_its_json_string() {
    let mut input: RenderInput =
        serde_json::from_value(example_context("send")).expect("deserializes");
    let hostile = "a\"],\"users\":[\"victim\"],\"x\":[\"\\'\n😀";
    input.context["connectionId"] = json!(hostile);
    input.body = r#"{"action":"send"}"#.into();
    let request = json(&form(&render("send.request.vtl", &input))["MessageBody"]);
    assert_eq!(request["connections"], json!([hostile]));
    assert!(request.get("users").is_none(), "{request}");
}

#[test]
fn emit_is_a_notification_request_on_the_notifications_queue_with_the_senders_identity() {
    let fields = form(&render_example("emit.request.vtl", "emit", "emit"));
    assert_eq!(fields["Action"], "SendMessage");
    assert_eq!(
        fields["QueueUrl"],
        "https://sqs.eu-west-1.amazonaws.com/123456789012/sumu-dev-notifications"
    );
    // The client's `from` (in the frame and in data) stays data; the sender is the gateway's.
    assert_eq!(
        json(&fields["MessageBody"]),
        json!({"channels": ["room/42"], "data": {"text": "hi all", "from": "mallory"}})
    );
    assert_eq!(fields["MessageAttribute.1.Value.StringValue"], "user-42");
    assert_eq!(
        fields["MessageAttribute.2.Value.StringValue"],
        "L0SM9cOFvHcCIhw="
    );
    assert_eq!(
        fields["MessageAttribute.4.Value.StringValue"],
        "apigw.route.emit"
    );
    assert_eq!(fields["MessageAttribute.5.Name"], "channels_publish");
    assert_eq!(
        fields["MessageAttribute.5.Value.StringValue"],
        "room/* user/user-42"
    );
}

#[test]
fn emit_leaves_validation_to_the_pusher_and_cannot_be_used_to_add_keys() {
    let input: RenderInput = serde_json::from_value(example_context("emit")).expect("deserializes");
    let render_body = |input: &RenderInput, text: &str| {
        let mut input = input.clone();
        input.body = text.into();
        let fields = form(&render("emit.request.vtl", &input));
        (json(&fields["MessageBody"]), fields)
    };
    let body = |text: &str| render_body(&input, text);
    let (request, _) = body(r#"{"action":"emit","channel":"room/42"}"#);
    assert_eq!(request, json!({"channels": ["room/42"], "data": null}));
    let (request, _) = body(r#"{"action":"emit","data":1}"#);
    assert_eq!(request, json!({"channels": [], "data": 1}));
    let (request, _) = body(r#"{"action":"emit","channel":{"users":["victim"]},"data":"x"}"#);
    assert_eq!(
        request,
        json!({"channels": [{"users": ["victim"]}], "data": "x"})
    );
    let hostile = r#"room"],"users":["victim"],"x":["#;
    let (request, _) = body(&json!({"action": "emit", "channel": hostile, "data": 1}).to_string());
    assert_eq!(request, json!({"channels": [hostile], "data": 1}));

    // `ref` and `exclude_connections` enter as JSON values, whatever they hold: the pusher
    // validates them.
    let (request, _) = body(
        r#"{"action":"emit","channel":"room/42","data":1,"ref":"r-1","exclude_connections":["c1"]}"#,
    );
    assert_eq!(
        request,
        json!({"channels": ["room/42"], "data": 1, "ref": "r-1", "exclude_connections": ["c1"]})
    );
    for hostile_ref in [
        json!(r#"r","users":["victim"],"x":""#),
        json!("a\\b"),
        json!(7),
        json!({"users": ["victim"]}),
        json!("r".repeat(65)),
    ] {
        let (request, _) = body(
            &json!({"action": "emit", "channel": "room/42", "data": 1, "ref": hostile_ref})
                .to_string(),
        );
        assert_eq!(
            request,
            json!({"channels": ["room/42"], "data": 1, "ref": hostile_ref}),
            "{hostile_ref}"
        );
    }

    // A connection without publish grants sends no empty attribute (SQS refuses one).
    let mut without_grants = input.clone();
    without_grants.context["authorizer"]
        .as_object_mut()
        .expect("authorizer")
        .remove("channels_publish");
    let (_, fields) = render_body(
        &without_grants,
        r#"{"action":"emit","channel":"room/42","data":1}"#,
    );
    assert!(
        !fields.contains_key("MessageAttribute.5.Name"),
        "{fields:?}"
    );
    assert_eq!(
        fields["MessageAttribute.4.Value.StringValue"],
        "apigw.route.emit"
    );
}

#[test]
fn default_route_mocks_200_and_answers_unknown_action() {
    assert_eq!(
        json(&render_example("default.request.vtl", "default", "default")),
        json!({"statusCode": 200})
    );
    let frame = json(&render_example("default.response.vtl", "default", "empty"));
    assert_eq!(frame["type"], "error");
    assert_eq!(frame["error"], "unknown_action");
    assert_eq!(frame["request_id"], "L0SNAFmlIAMFqzA=");
    // Every action of the `actions` stage variable, in the text and as a list.
    assert_eq!(
        frame["actions"],
        json!([
            "emit",
            "history",
            "ping",
            "presence",
            "publish",
            "send",
            "subscribe",
            "unsubscribe"
        ])
    );
    assert_eq!(
        frame["message"],
        "Unknown action. Send JSON with \"action\" set to one of: emit, history, ping, presence, publish, send, subscribe, unsubscribe."
    );
}
