//! The mapping templates, rendered by `vtl` with realistic contexts, are requests the real
//! service APIs accept: each body is sent by `AwsService` (as API Gateway's AWS integration
//! sends it) to a moto server, and the result is read back with the AWS SDK.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_sqs::types::MessageAttributeValue;
use serde_json::{json, Value};
use sumu_local::aws_service::AwsService;
use vtl::{RenderInput, Template};

fn templates_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../mapping-templates")
}

fn read(path: PathBuf) -> String {
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The example context of `route` (mapping-templates/examples), with this test's resources.
fn context(route: &str, resources: &[(&str, &str)], connection_id: &str) -> RenderInput {
    let mut input: RenderInput = serde_json::from_str(&read(
        templates_dir().join(format!("examples/{route}.context.json")),
    ))
    .expect("example context");
    for (name, value) in resources {
        input
            .stage_variables
            .insert((*name).into(), (*value).into());
    }
    input.context["connectionId"] = json!(connection_id);
    input
}

fn render(template: &str, input: &RenderInput) -> String {
    Template::parse(&read(templates_dir().join(template)))
        .and_then(|parsed| parsed.render(input))
        .unwrap_or_else(|e| panic!("{template}: {e}"))
}

fn service() -> AwsService {
    AwsService::new(&testkit::moto_endpoint(), testkit::REGION)
}

async fn get_item(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    user_id: &str,
    connection_id: &str,
) -> Option<HashMap<String, AttributeValue>> {
    client
        .get_item()
        .table_name(table)
        .key("user_id", AttributeValue::S(user_id.into()))
        .key("connection_id", AttributeValue::S(connection_id.into()))
        .consistent_read(true)
        .send()
        .await
        .expect("get item")
        .item
}

fn number(item: &HashMap<String, AttributeValue>, name: &str) -> i64 {
    match item.get(name) {
        Some(AttributeValue::N(value)) => value.parse().expect("integer"),
        other => panic!("{name} is not a Number: {other:?}"),
    }
}

fn string<'a>(item: &'a HashMap<String, AttributeValue>, name: &str) -> &'a str {
    match item.get(name) {
        Some(AttributeValue::S(value)) => value,
        other => panic!("{name} is not a String: {other:?}"),
    }
}

#[tokio::test]
async fn connection_lifecycle_templates_write_typed_items_and_ping_never_recreates() {
    let config = testkit::aws_config().await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&config);
    let table = testkit::create_connections_table(&dynamodb).await;
    let connection_id = testkit::unique_name("conn");
    let resources = [("connections_table", table.as_str())];
    let service = service();

    // $connect → PutItem.
    let connect = context("connect", &resources, &connection_id);
    let response = service
        .call(
            "dynamodb",
            "PutItem",
            render("connect.request.vtl", &connect),
        )
        .await
        .expect("PutItem");
    assert_eq!(response.status, 200, "{}", response.body);
    let item = get_item(&dynamodb, &table, "user-42", &connection_id)
        .await
        .expect("item stored");
    let request_ms = connect.context["requestTimeEpoch"].as_i64().expect("epoch");
    assert_eq!(
        number(&item, "expires_at"),
        request_ms / 1000 + 7200,
        "TTL in seconds"
    );
    assert_eq!(
        number(&item, "connected_at"),
        connect.context["connectedAt"].as_i64().expect("ms")
    );
    assert_eq!(string(&item, "source_ip"), "203.0.113.7");
    assert_eq!(
        string(&item, "user_agent"),
        connect.context["identity"]["userAgent"]
            .as_str()
            .expect("ua"),
        "quotes, slashes and unicode survive escaping"
    );
    assert!(!item.contains_key("last_seen_at"));

    // ping → conditional UpdateItem of last_seen_at.
    let ping = context("ping", &resources, &connection_id);
    let response = service
        .call("dynamodb", "UpdateItem", render("ping.request.vtl", &ping))
        .await
        .expect("UpdateItem");
    assert_eq!(response.status, 200, "{}", response.body);
    let item = get_item(&dynamodb, &table, "user-42", &connection_id)
        .await
        .expect("item kept");
    assert_eq!(
        number(&item, "last_seen_at"),
        ping.context["requestTimeEpoch"].as_i64().expect("ms")
    );
    assert_eq!(
        number(&item, "expires_at"),
        request_ms / 1000 + 7200,
        "ping leaves the TTL alone"
    );

    // $disconnect → DeleteItem.
    let disconnect = context("disconnect", &resources, &connection_id);
    let response = service
        .call(
            "dynamodb",
            "DeleteItem",
            render("disconnect.request.vtl", &disconnect),
        )
        .await
        .expect("DeleteItem");
    assert_eq!(response.status, 200, "{}", response.body);
    assert!(get_item(&dynamodb, &table, "user-42", &connection_id)
        .await
        .is_none());

    // A ping after the delete fails its condition (4xx) and does not re-create the item.
    let response = service
        .call("dynamodb", "UpdateItem", render("ping.request.vtl", &ping))
        .await
        .expect("UpdateItem");
    assert_eq!(response.status, 400, "{}", response.body);
    assert!(
        response.body.contains("ConditionalCheckFailedException"),
        "{}",
        response.body
    );
    assert!(get_item(&dynamodb, &table, "user-42", &connection_id)
        .await
        .is_none());
    // …and the client is told to reconnect (the integration response template for 4xx).
    let mut gone = ping.clone();
    gone.body = response.body;
    let frame: Value =
        serde_json::from_str(&render("ping.gone.response.vtl", &gone)).expect("JSON");
    assert_eq!(frame["error"], "connection_gone");
    assert_eq!(frame["connection_id"], json!(connection_id));
}

/// Receives one message from `queue_url`, polling for up to 30 s.
async fn receive_one(sqs: &aws_sdk_sqs::Client, queue_url: &str) -> aws_sdk_sqs::types::Message {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let received = sqs
            .receive_message()
            .queue_url(queue_url)
            .message_attribute_names("All")
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .expect("receive");
        let mut messages = received.messages.unwrap_or_default();
        if let Some(message) = messages.pop() {
            assert!(messages.is_empty(), "exactly one message expected");
            return message;
        }
        assert!(
            Instant::now() < deadline,
            "no message on {queue_url} after 30 s"
        );
    }
}

fn assert_trusted_attributes(
    attributes: &HashMap<String, MessageAttributeValue>,
    connection_id: &str,
    epoch_ms: i64,
    source: &str,
) {
    let expect = |name: &str, data_type: &str, value: &str| {
        let attribute = attributes
            .get(name)
            .unwrap_or_else(|| panic!("attribute {name} missing: {attributes:?}"));
        assert_eq!(attribute.data_type(), data_type, "{name}");
        assert_eq!(attribute.string_value(), Some(value), "{name}");
    };
    expect("user_id", "String", "user-42");
    expect("connection_id", "String", connection_id);
    expect("timestamp", "Number", &epoch_ms.to_string());
    expect("source", "String", source);
    assert_eq!(attributes.len(), 4, "{attributes:?}");
}

async fn create_queue(sqs: &aws_sdk_sqs::Client) -> String {
    sqs.create_queue()
        .queue_name(testkit::tables::stack_name("messages"))
        .send()
        .await
        .expect("create queue")
        .queue_url
        .expect("queue url")
}

#[tokio::test]
async fn send_template_is_an_sqs_send_message_with_all_four_attributes() {
    let config = testkit::aws_config().await;
    let sqs = aws_sdk_sqs::Client::new(&config);
    let queue_url = create_queue(&sqs).await;
    let connection_id = testkit::unique_name("conn");
    let mut input = context(
        "send",
        &[("messages_queue_url", &queue_url)],
        &connection_id,
    );
    input.body = read(templates_dir().join("examples/send.body.json"));

    let response = service()
        .call("sqs", "SendMessage", render("send.request.vtl", &input))
        .await
        .expect("SendMessage");
    assert_eq!(response.status, 200, "{}", response.body);

    let message = receive_one(&sqs, &queue_url).await;
    let client_body: Value = serde_json::from_str(&input.body).expect("body");
    let delivered: Value = serde_json::from_str(message.body().expect("body")).expect("JSON body");
    assert_eq!(delivered, client_body["message"]);
    // The client wrote "user_id": "someone-else" into its message; the attribute is trusted.
    assert_eq!(delivered["user_id"], "someone-else");
    let epoch = input.context["requestTimeEpoch"].as_i64().expect("epoch");
    assert_trusted_attributes(
        message.message_attributes().expect("attributes"),
        &connection_id,
        epoch,
        "apigw.route.send",
    );
}

#[tokio::test]
async fn publish_template_is_an_sns_publish_delivered_with_all_four_attributes() {
    let config = testkit::aws_config().await;
    let sns = aws_sdk_sns::Client::new(&config);
    let sqs = aws_sdk_sqs::Client::new(&config);
    let topic_arn = sns
        .create_topic()
        .name(testkit::tables::stack_name("messages"))
        .send()
        .await
        .expect("create topic")
        .topic_arn
        .expect("topic arn");
    let queue_url = create_queue(&sqs).await;
    // Raw delivery: the SQS message is the SNS message, its attributes SQS attributes — the
    // shape a back end consuming the messages queue sees.
    testkit::subscribe_queue_to_topic(&config, &topic_arn, &queue_url, None).await;

    let connection_id = testkit::unique_name("conn");
    let mut input = context(
        "publish",
        &[("messages_topic_arn", &topic_arn)],
        &connection_id,
    );
    input.body = read(templates_dir().join("examples/publish.body.json"));
    let response = service()
        .call("sns", "Publish", render("publish.request.vtl", &input))
        .await
        .expect("Publish");
    assert_eq!(response.status, 200, "{}", response.body);

    let message = receive_one(&sqs, &queue_url).await;
    let client_body: Value = serde_json::from_str(&input.body).expect("body");
    let delivered: Value = serde_json::from_str(message.body().expect("body")).expect("JSON body");
    assert_eq!(
        delivered, client_body["message"],
        "unicode, quotes, & and = survive"
    );
    assert_eq!(delivered["user_id"], "someone-else");
    let epoch = input.context["requestTimeEpoch"].as_i64().expect("epoch");
    assert_trusted_attributes(
        message.message_attributes().expect("attributes"),
        &connection_id,
        epoch,
        "apigw.route.publish",
    );
}

#[tokio::test]
async fn unknown_service_is_an_error_not_a_request() {
    let error = service()
        .call("lambda", "Invoke", String::new())
        .await
        .expect_err("unsupported service");
    assert!(error.to_string().contains("lambda"), "{error}");
}

/// The seed system's bug, kept as a control: with SNS's plural spelling
/// (`MessageAttributes.N.*`) SQS accepts the message and silently drops every attribute, which
/// is what the singular spelling in send.request.vtl (asserted above) avoids.
#[tokio::test]
async fn sqs_drops_attributes_spelled_the_sns_way() {
    let config = testkit::aws_config().await;
    let sqs = aws_sdk_sqs::Client::new(&config);
    let queue_url = create_queue(&sqs).await;
    let connection_id = testkit::unique_name("conn");
    let mut input = context(
        "send",
        &[("messages_queue_url", &queue_url)],
        &connection_id,
    );
    input.body = read(templates_dir().join("examples/send.body.json"));
    let plural =
        render("send.request.vtl", &input).replace("MessageAttribute.", "MessageAttributes.");

    let response = service()
        .call("sqs", "SendMessage", plural)
        .await
        .expect("SendMessage");
    assert_eq!(response.status, 200, "{}", response.body);
    let message = receive_one(&sqs, &queue_url).await;
    assert!(
        message.message_attributes().is_none_or(HashMap::is_empty),
        "{:?}",
        message.message_attributes()
    );
}
