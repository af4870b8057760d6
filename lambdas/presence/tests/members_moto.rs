//! The members table against a real moto server: what DynamoDB's `ADD`/`DELETE` on a string
//! set return (ALL_NEW after an addition, ALL_OLD before a removal) tells each transition, a
//! retried change tells it again, and the gauges add up.

use aws_sdk_dynamodb::Client;
use presence::{ChannelMembers, DynamoSubscriptionStore, Gauges, SetChange};

async fn store() -> DynamoSubscriptionStore {
    let config = testkit::aws_config().await;
    let client = Client::new(&config);
    let connections = testkit::create_connections_table(&client).await;
    let subscriptions = testkit::create_subscriptions_table(&client).await;
    let members = testkit::create_members_table(&client).await;
    DynamoSubscriptionStore::new(client, connections, subscriptions).with_members_table(members)
}

fn change(transition: bool, size: u32) -> SetChange {
    SetChange { transition, size }
}

const NOW: i64 = 1_700_000_000;

#[tokio::test]
async fn set_changes_tell_joins_leaves_and_retries() {
    let store = store().await;
    let add = |connection: &'static str| store.add_connection("room/1", "alice", connection, NOW);
    let remove =
        |connection: &'static str| store.remove_connection("room/1", "alice", connection, NOW);
    assert_eq!(add("c1").await.unwrap(), change(true, 1));
    // The same record retried: still the join.
    assert_eq!(add("c1").await.unwrap(), change(true, 1));
    assert_eq!(add("c2").await.unwrap(), change(false, 2));
    assert_eq!(
        store.membership("room/1", "alice").await.unwrap(),
        (true, 0)
    );
    assert_eq!(remove("c1").await.unwrap(), change(false, 1));
    assert_eq!(remove("c2").await.unwrap(), change(true, 0));
    // The last removal retried: still the leave; a connection never added: nothing.
    assert_eq!(remove("c2").await.unwrap(), change(true, 0));
    assert_eq!(remove("c9").await.unwrap(), change(false, 0));
    assert_eq!(
        store.membership("room/1", "alice").await.unwrap(),
        (false, 0)
    );

    assert_eq!(
        store.add_member("room/1", "alice", NOW).await.unwrap(),
        change(true, 1)
    );
    assert_eq!(
        store.add_member("room/1", "bob", NOW).await.unwrap(),
        change(false, 2)
    );
    assert_eq!(store.membership("room/1", "bob").await.unwrap(), (false, 2));
    assert_eq!(
        store.remove_member("room/1", "alice", NOW).await.unwrap(),
        change(false, 1)
    );
    assert_eq!(
        store.remove_member("room/1", "bob", NOW).await.unwrap(),
        change(true, 0)
    );
    // Another channel's items are its own.
    assert_eq!(
        store.add_member("room/2", "bob", NOW).await.unwrap(),
        change(true, 1)
    );
}

#[tokio::test]
async fn gauges_add_up_and_start_at_zero() {
    let store = store().await;
    assert_eq!(
        store.adjust_gauges(3, 0).await.unwrap(),
        Gauges {
            connections: 3,
            subscriptions: 0
        }
    );
    assert_eq!(
        store.adjust_gauges(-1, 5).await.unwrap(),
        Gauges {
            connections: 2,
            subscriptions: 5
        }
    );
}
