//! Client messages through sumu-local: route selection, `ping`, `publish`, `send`, `$default`.

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_sqs::types::MessageAttributeValue;
use e2e::{next_text, number, send_text, string, Local};
use serde_json::{json, Value};
use sumu_wire::{attributes, table};

#[tokio::test]
async fn ping_answers_pong_and_updates_last_seen_at() {
    let local = Local::start().await;
    let user = testkit::unique_name("pinger");
    let mut client = local.connect(&user).await;
    let connected_at = number(&local.item_of(&user).await, table::CONNECTED_AT);

    send_text(&mut client, r#"{"action":"ping"}"#).await;
    let pong = next_text(&mut client).await;
    assert_eq!(pong["type"], "pong", "got {pong}");

    let item = local.item_of(&user).await;
    let last_seen_at = number(&item, table::LAST_SEEN_AT);
    assert!(
        last_seen_at >= connected_at,
        "last_seen_at {last_seen_at} is epoch ms after connected_at {connected_at}"
    );
}

#[tokio::test]
async fn ping_after_the_item_was_deleted_does_not_recreate_it() {
    let local = Local::start().await;
    let user = testkit::unique_name("ghost");
    let mut client = local.connect(&user).await;
    let connection_id = local.connection_id_of(&user).await;
    local
        .dynamodb
        .delete_item()
        .table_name(&local.endpoints.resources.connections_table)
        .key(table::USER_ID, AttributeValue::S(user.clone()))
        .key(table::CONNECTION_ID, AttributeValue::S(connection_id))
        .send()
        .await
        .expect("delete the item");

    send_text(&mut client, r#"{"action":"ping"}"#).await;
    let answer = next_text(&mut client).await;
    assert_ne!(
        answer["type"], "pong",
        "a deleted connection is not told all is well: {answer}"
    );
    assert!(
        local.items_of(&user).await.is_empty(),
        "the ping re-created the item"
    );
}

fn attribute<'a>(
    message: &'a aws_sdk_sqs::types::Message,
    name: &str,
) -> &'a MessageAttributeValue {
    message
        .message_attributes()
        .and_then(|attributes| attributes.get(name))
        .unwrap_or_else(|| panic!("attribute {name} missing from {message:?}"))
}

/// The four trusted attributes, whatever the client put in its message.
async fn assert_trusted_attributes(
    local: &Local,
    message: &aws_sdk_sqs::types::Message,
    user: &str,
    source: &str,
    sent_after_ms: i64,
) {
    let user_id = attribute(message, attributes::USER_ID);
    assert_eq!(user_id.data_type(), "String");
    assert_eq!(user_id.string_value(), Some(user));
    let connection_id = attribute(message, attributes::CONNECTION_ID);
    assert_eq!(
        connection_id.string_value(),
        Some(local.connection_id_of(user).await.as_str())
    );
    let timestamp = attribute(message, attributes::TIMESTAMP);
    assert_eq!(timestamp.data_type(), "Number");
    let timestamp: i64 = timestamp
        .string_value()
        .expect("timestamp value")
        .parse()
        .expect("a whole number");
    assert!(
        timestamp >= sent_after_ms,
        "timestamp is the request's epoch ms"
    );
    assert_eq!(
        attribute(message, attributes::SOURCE).string_value(),
        Some(source)
    );
}

/// A client message that tries to pass itself off as someone else.
fn spoofing_message(action: &str) -> String {
    json!({
        "action": action,
        "user_id": "mallory",
        "connection_id": "forged=",
        "source": "lambda.presence.watchdog",
        "message": {"text": "hello", "user_id": "mallory"},
    })
    .to_string()
}

#[tokio::test]
async fn publish_reaches_the_messages_topic_with_trusted_attributes() {
    let local = Local::start().await;
    let tap = local
        .queue_subscribed_to(&local.endpoints.resources.messages_topic_arn)
        .await;
    let user = testkit::unique_name("publisher");
    let mut client = local.connect(&user).await;
    local.item_of(&user).await;
    let sent_after = sumu_local::protocol::now_ms();

    send_text(&mut client, &spoofing_message("publish")).await;
    let message = local.receive_one(&tap).await;
    let body: Value = serde_json::from_str(message.body().expect("body")).expect("JSON body");
    assert_eq!(body, json!({"text": "hello", "user_id": "mallory"}));
    assert_trusted_attributes(
        &local,
        &message,
        &user,
        attributes::SOURCE_PUBLISH,
        sent_after,
    )
    .await;
}

#[tokio::test]
async fn send_reaches_the_messages_queue_with_trusted_attributes() {
    let local = Local::start().await;
    let user = testkit::unique_name("sender");
    let mut client = local.connect(&user).await;
    local.item_of(&user).await;
    let sent_after = sumu_local::protocol::now_ms();

    send_text(&mut client, &spoofing_message("send")).await;
    let message = local
        .receive_one(&local.endpoints.resources.messages_queue_url)
        .await;
    let body: Value = serde_json::from_str(message.body().expect("body")).expect("JSON body");
    assert_eq!(body, json!({"text": "hello", "user_id": "mallory"}));
    assert_trusted_attributes(&local, &message, &user, attributes::SOURCE_SEND, sent_after).await;
}

#[tokio::test]
async fn unknown_actions_and_non_json_text_get_the_unknown_action_frame() {
    let local = Local::start().await;
    let user = testkit::unique_name("confused");
    let mut client = local.connect(&user).await;
    let connection_id = local.connection_id_of(&user).await;

    // Every action a client may send, straight from the route table both sides read.
    let routes: Value = serde_json::from_str(
        &std::fs::read_to_string(testkit::repo_root().join("mapping-templates/routes.json"))
            .expect("routes.json"),
    )
    .expect("JSON");
    let mut actions: Vec<&str> = routes["routes"]
        .as_object()
        .expect("routes")
        .keys()
        .map(String::as_str)
        .filter(|key| !key.starts_with('$'))
        .collect();
    actions.sort_unstable();
    assert!(actions.contains(&"presence"), "{actions:?}");

    for text in [
        r#"{"action":"fly"}"#,
        "this is not JSON",
        r#"{"no":"action"}"#,
        "[1,2]",
    ] {
        send_text(&mut client, text).await;
        let frame = next_text(&mut client).await;
        assert_eq!(frame["type"], "error", "{text:?} → {frame}");
        assert_eq!(frame["error"], "unknown_action", "{text:?} → {frame}");
        assert_eq!(frame["connection_id"], connection_id.as_str(), "{frame}");
        assert_eq!(frame["actions"], json!(actions), "{frame}");
        let message = frame["message"].as_str().expect("message");
        for action in &actions {
            assert!(
                message.contains(action),
                "{action} missing from {message:?}"
            );
        }
    }
    // The connection stays usable.
    send_text(&mut client, r#"{"action":"ping"}"#).await;
    assert_eq!(next_text(&mut client).await["type"], "pong");
    assert_eq!(string(&local.item_of(&user).await, table::USER_ID), user);
}

#[tokio::test]
async fn without_a_default_route_an_unknown_action_gets_the_forbidden_frame() {
    // A copy of the route table without $default.
    let templates = std::env::temp_dir().join(testkit::unique_name("templates"));
    std::fs::create_dir_all(&templates).expect("mkdir");
    let source = testkit::repo_root().join("mapping-templates");
    for entry in std::fs::read_dir(&source).expect("read mapping-templates") {
        let path = entry.expect("entry").path();
        if path.is_file() {
            std::fs::copy(&path, templates.join(path.file_name().expect("name"))).expect("copy");
        }
    }
    let mut routes: Value = serde_json::from_str(
        &std::fs::read_to_string(source.join("routes.json")).expect("routes.json"),
    )
    .expect("JSON");
    routes["routes"]
        .as_object_mut()
        .expect("routes")
        .remove("$default");
    std::fs::write(templates.join("routes.json"), routes.to_string()).expect("write");

    let local = Local::start_configured(|config| config.templates_dir = templates.clone()).await;
    let user = testkit::unique_name("lost");
    let mut client = local.connect(&user).await;
    let connection_id = local.connection_id_of(&user).await;
    for text in [r#"{"action":"fly"}"#, "not JSON"] {
        send_text(&mut client, text).await;
        let frame = next_text(&mut client).await;
        assert_eq!(frame["message"], "Forbidden", "{frame}");
        assert_eq!(frame["connectionId"], connection_id.as_str());
        assert!(frame["requestId"].is_string());
    }
    std::fs::remove_dir_all(templates).expect("cleanup");
}

/// `send`/`publish` whose `message` is missing, null or not a JSON object: the sender alone gets
/// the invalid_message frame and nothing reaches the messages topic or queue.
#[tokio::test]
async fn a_message_that_is_not_a_json_object_is_refused_and_reaches_nobody() {
    let local = Local::start().await;
    let tap = local
        .queue_subscribed_to(&local.endpoints.resources.messages_topic_arn)
        .await;
    let user = testkit::unique_name("sloppy");
    let bystander = testkit::unique_name("bystander");
    let mut client = local.connect(&user).await;
    let mut other = local.connect(&bystander).await;
    let connection_id = local.connection_id_of(&user).await;
    local.item_of(&bystander).await;

    for route in ["send", "publish"] {
        for message in [
            "",
            r#","message":null"#,
            r#","message":"text""#,
            r#","message":[1]"#,
        ] {
            let text = format!(r#"{{"action":"{route}"{message}}}"#);
            send_text(&mut client, &text).await;
            let frame = next_text(&mut client).await;
            assert_eq!(frame["type"], "error", "{text} → {frame}");
            assert_eq!(frame["error"], "invalid_message", "{text} → {frame}");
            assert_eq!(frame["connection_id"], connection_id.as_str(), "{frame}");
            assert!(
                frame["message"]
                    .as_str()
                    .expect("message")
                    .starts_with(route),
                "{frame}"
            );
        }
    }

    // A valid message after them all is the first and only one the back ends see, on the queue
    // and on the topic: the refused ones were never sent.
    send_text(
        &mut client,
        r#"{"action":"send","message":{"marker":"queue"}}"#,
    )
    .await;
    send_text(
        &mut client,
        r#"{"action":"publish","message":{"marker":"topic"}}"#,
    )
    .await;
    let mut on_queue = Vec::new();
    while on_queue.len() < 2 {
        let message = local
            .receive_one(&local.endpoints.resources.messages_queue_url)
            .await;
        on_queue.push(serde_json::from_str::<Value>(message.body().expect("body")).expect("JSON"));
    }
    on_queue.sort_by_key(|body| body["marker"].to_string());
    assert_eq!(
        on_queue,
        vec![json!({"marker": "queue"}), json!({"marker": "topic"})]
    );
    let published = local.receive_one(&tap).await;
    assert_eq!(
        serde_json::from_str::<Value>(published.body().expect("body")).expect("JSON"),
        json!({"marker": "topic"})
    );
    // And the bystander was told nothing.
    send_text(&mut other, r#"{"action":"ping"}"#).await;
    assert_eq!(next_text(&mut other).await["type"], "pong");
}
