//! Server-side control through sumu-local + moto with real WebSocket clients (docs/pusher.md
//! § Server-side control): a back end's `disconnect` closes every connection of a user, each
//! after the last frame; its `subscribe` reaches every live connection of a user and none of
//! an ended one, and makes the user a member (its `join` goes out like a client's).

use e2e::channels::grants;
use e2e::notify::Via;
use e2e::{close_frame, message_data, next_text, now_secs, string, Local};
use serde_json::json;
use sumu_wire::subscriptions;

const NAMESPACES: &str = r#"[{"pattern":"room/*","join_leave":true}]"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disconnect_closes_every_connection_of_the_user_after_the_last_frame() {
    let local = Local::start_with_members(NAMESPACES).await;
    let user = testkit::unique_name("banned");
    let token = local.token(&user);
    let mut first = local.connect_with_token(&token).await;
    let mut second = local.connect_with_token(&token).await;
    let bystander = local.connect("bystander").await;
    e2e::eventually("both connections are stored", || async {
        (local.items_of(&user).await.len() == 2).then_some(())
    })
    .await;

    local
        .notify(
            Via::Queue,
            &json!({"action":"disconnect","users":[user],"data":{"reason":"banned"}}).to_string(),
        )
        .await;
    for client in [&mut first, &mut second] {
        assert_eq!(
            message_data(&next_text(client).await),
            json!({"reason":"banned"})
        );
        assert_eq!(u16::from(close_frame(client).await.code), 1000);
    }
    local.until_no_item(&user).await;
    // Nobody else was touched: the bystander is still connected (each test has its own table).
    assert_eq!(local.items_of("bystander").await.len(), 1);
    drop(bystander);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_back_end_subscribe_reaches_every_live_connection_and_none_of_an_ended_one() {
    let local = Local::start_with_members(NAMESPACES).await;
    let mut watcher = local
        .receiver_with_grants("watcher", &grants(&["room/*"], &[]))
        .await;
    e2e::channels::subscribe(&mut watcher.client, "room/vip").await;

    // The user may subscribe to lobby/* only, not room/vip: the back end subscribes it anyway
    // (trusted).
    let user = testkit::unique_name("guest");
    let token = local.token_with_grants(&user, &grants(&["lobby/*"], &[]));
    let mut tab1 = local.connect_with_token(&token).await;
    let mut tab2 = local.connect_with_token(&token).await;
    let ended = local.connect_with_token(&token).await;
    e2e::eventually("three connections are stored", || async {
        (local.items_of(&user).await.len() == 3).then_some(())
    })
    .await;
    let ended_items = local.items_of(&user).await;
    drop(ended);
    e2e::eventually("the ended connection's item is gone", || async {
        (local.items_of(&user).await.len() == 2).then_some(())
    })
    .await;
    let remaining: Vec<String> = local
        .items_of(&user)
        .await
        .iter()
        .map(|item| string(item, "connection_id"))
        .collect();
    let ended_id = ended_items
        .iter()
        .map(|item| string(item, "connection_id"))
        .find(|id| !remaining.contains(id))
        .expect("the ended connection's id");
    // An item whose connection is past its expires_at (no socket behind it).
    let expired = local.put_item(&user, now_secs() - 60).await;

    local
        .notify(
            Via::Queue,
            &json!({"action":"subscribe","channel":"room/vip","users":[user]}).to_string(),
        )
        .await;
    let live: Vec<String> = local
        .items_of(&user)
        .await
        .iter()
        .map(|item| string(item, "connection_id"))
        .filter(|id| *id != expired)
        .collect();
    assert_eq!(live.len(), 2);
    for connection in &live {
        let connection = connection.clone();
        e2e::eventually("each live connection has the subscription", || {
            let connection = connection.clone();
            let local = &local;
            async move {
                let items = local.subscriptions_of(&connection).await;
                items
                    .iter()
                    .any(|item| string(item, subscriptions::CHANNEL) == "room/vip")
                    .then_some(())
            }
        })
        .await;
    }
    assert!(local.subscriptions_of(&expired).await.is_empty());
    assert!(local.subscriptions_of(&ended_id).await.is_empty());
    // The user became a member: one join, as for a client's own subscribe.
    loop {
        let frame = next_text(&mut watcher.client).await;
        if frame["type"] == "join" && frame["user_id"] == user.as_str() {
            break;
        }
    }

    // A publication to the channel reaches both tabs.
    local
        .notify(
            Via::Queue,
            &json!({"channels":["room/vip"],"data":{"n":1}}).to_string(),
        )
        .await;
    for tab in [&mut tab1, &mut tab2] {
        let frame = loop {
            let frame = next_text(tab).await;
            if frame["type"] == "publication" {
                break frame;
            }
        };
        assert_eq!(frame["channel"], "room/vip");
        assert_eq!(frame["data"], json!({"n":1}));
    }

    // And the back end's unsubscribe takes it away again: one leave.
    local
        .notify(
            Via::Queue,
            &json!({"action":"unsubscribe","channel":"room/vip","users":[user]}).to_string(),
        )
        .await;
    loop {
        let frame = next_text(&mut watcher.client).await;
        if frame["type"] == "leave" && frame["user_id"] == user.as_str() {
            break;
        }
    }
    for connection in &live {
        assert!(local.subscriptions_of(connection).await.is_empty());
    }

    // A subscription the client made itself counts toward its cap; the back end's unsubscribe
    // frees that place too.
    e2e::channels::subscribe(&mut tab1, "lobby/1").await;
    let counter = || async {
        let items = local.items_of(&user).await;
        items
            .iter()
            .filter(|item| item.contains_key(sumu_wire::table::SUBSCRIPTIONS))
            .map(|item| e2e::number(item, sumu_wire::table::SUBSCRIPTIONS))
            .sum::<i64>()
    };
    assert_eq!(counter().await, 1);
    local
        .notify(
            Via::Queue,
            &json!({"action":"unsubscribe","channel":"lobby/1","users":[user]}).to_string(),
        )
        .await;
    e2e::eventually(
        "the client's own subscription is gone and uncounted",
        || async { (counter().await == 0).then_some(()) },
    )
    .await;
    for connection in &live {
        assert!(local.subscriptions_of(connection).await.is_empty());
    }
}
