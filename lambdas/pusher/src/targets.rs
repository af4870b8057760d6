//! Planning a request's deliveries (reads only, no post): what each payload is and whom it
//! goes to. A request to users, connections or everyone is one payload (its message frame) to
//! connections found in the connections table; a publication is one payload (its envelope)
//! per channel, to connections found in the subscriptions table. Either way the candidates
//! are filtered by the one [`select`].

use std::collections::{HashMap, HashSet};

use futures::{StreamExt, TryStreamExt};

use crate::config::Limits;
use crate::request::{Planned, Request, Shard, Targets};
use crate::store::{ConnectionItem, ConnectionKey, ConnectionStore, StoreError};
use crate::subscriptions::{SubscriptionItem, SubscriptionKey, SubscriptionStore};

/// The most shards a broadcast is split into at once (10 million connections at the default
/// threshold); a table larger still is covered by the shards' continuations.
pub const MAX_SHARDS: u64 = 1_000;

/// A request's deliveries, and the shards of a large broadcast other invocations are to handle.
#[derive(Debug)]
pub struct Plan<'r> {
    pub parts: Vec<Part<'r>>,
    pub shards: Vec<Shard>,
}

/// One payload and its targets.
#[derive(Debug)]
pub struct Part<'r> {
    /// The publication this part delivers; `None` for a request's own `data`.
    pub publication: Option<&'r Planned>,
    /// The bytes every target gets.
    pub payload: &'r [u8],
    pub selection: Selection,
}

/// One item found for a request: a connection item, or a subscription item (`via`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub key: ConnectionKey,
    pub live: bool,
    /// The subscription item it was found through (pruned with the connection if it is gone).
    pub via: Option<SubscriptionKey>,
}

impl Candidate {
    pub fn connection(item: ConnectionItem, now_epoch_seconds: i64) -> Candidate {
        Candidate {
            live: item.is_live(now_epoch_seconds),
            key: item.key,
            via: None,
        }
    }

    pub fn subscription(item: SubscriptionItem, now_epoch_seconds: i64) -> Candidate {
        Candidate {
            live: item.is_live(now_epoch_seconds),
            key: ConnectionKey {
                user_id: item.user_id,
                connection_id: item.key.connection_id.clone(),
            },
            via: Some(item.key),
        }
    }
}

/// One connection a payload goes to, and every subscription item it was found through (all of
/// them are pruned if the connection turns out to be gone).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub key: ConnectionKey,
    pub via: Vec<SubscriptionKey>,
}

/// The targets of one payload, after filtering.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Selection {
    /// Live, not excluded, each connection once.
    pub live: Vec<Target>,
    /// Connection items whose `expires_at` passed: to be pruned, never posted to.
    pub expired: Vec<ConnectionKey>,
    /// Subscription items whose `expires_at` passed: to be pruned, never posted to.
    pub expired_subscriptions: Vec<SubscriptionKey>,
}

/// Separates expired items (each once), drops excluded users and connection ids, and keeps
/// each connection once (a connection found through two matching patterns gets the payload
/// once, and both subscription items are remembered). Exclusions are hash sets, so any number
/// costs the same.
pub fn select(
    found: Vec<Candidate>,
    exclude_users: &[String],
    exclude_connections: &[String],
) -> Selection {
    let excluded_users: HashSet<&str> = exclude_users.iter().map(String::as_str).collect();
    let excluded_connections: HashSet<&str> =
        exclude_connections.iter().map(String::as_str).collect();
    let mut index: HashMap<String, usize> = HashMap::with_capacity(found.len());
    let mut expired_seen: HashSet<ConnectionKey> = HashSet::new();
    let mut selection = Selection::default();
    for candidate in found {
        if !candidate.live {
            match candidate.via {
                Some(via) => selection.expired_subscriptions.push(via),
                None => {
                    if expired_seen.insert(candidate.key.clone()) {
                        selection.expired.push(candidate.key);
                    }
                }
            }
            continue;
        }
        if excluded_users.contains(candidate.key.user_id.as_str())
            || excluded_connections.contains(candidate.key.connection_id.as_str())
        {
            continue;
        }
        match index.get(&candidate.key.connection_id) {
            Some(&at) => selection.live[at].via.extend(candidate.via),
            None => {
                index.insert(candidate.key.connection_id.clone(), selection.live.len());
                selection.live.push(Target {
                    key: candidate.key,
                    via: candidate.via.into_iter().collect(),
                });
            }
        }
    }
    selection
}

/// Whether `item` was made after `cutoff` (epoch ms): an emit is not delivered to a
/// subscription made after the client sent it. That is how a client's emit never comes back
/// to its own new connection during a proactive reconnect: the new connection subscribes
/// after the emit left the old one, and before the client knows its id.
fn subscribed_after(item: &SubscriptionItem, cutoff: Option<i64>) -> bool {
    matches!((item.subscribed_at, cutoff), (Some(at), Some(cutoff)) if at > cutoff)
}

/// Reads everything the request's deliveries need, before anything is posted: a failed
/// lookup redelivers a message that reached nobody. `can_shard`: whether a large broadcast
/// may hand shards to other invocations.
pub async fn plan<'r, S>(
    store: &S,
    limits: &Limits,
    request: &'r Request,
    can_shard: bool,
    now_epoch_seconds: i64,
) -> Result<Plan<'r>, StoreError>
where
    S: ConnectionStore + SubscriptionStore,
{
    let exclude_users = &request.fields.exclude_users;
    let exclude_connections = &request.fields.exclude_connections;
    if let Targets::Channels(publications) = &request.targets {
        let found = look_up_subscribers(store, limits, publications).await?;
        let parts = publications
            .iter()
            .zip(found)
            .map(|(planned, items)| {
                let candidates = items
                    .into_iter()
                    .filter(|item| !subscribed_after(item, request.subscribed_before))
                    .map(|item| Candidate::subscription(item, now_epoch_seconds))
                    .collect();
                Part {
                    publication: Some(planned),
                    payload: planned.envelope.get().as_bytes(),
                    selection: select(candidates, exclude_users, exclude_connections),
                }
            })
            .collect();
        return Ok(Plan {
            parts,
            shards: Vec::new(),
        });
    }
    let (found, shards) = look_up_connections(store, limits, request, can_shard).await?;
    let candidates = found
        .into_iter()
        .map(|item| Candidate::connection(item, now_epoch_seconds))
        .collect();
    Ok(Plan {
        parts: vec![Part {
            publication: None,
            payload: request.frame(),
            selection: select(candidates, exclude_users, exclude_connections),
        }],
        shards,
    })
}

/// The connections a `disconnect`, `subscribe` or `unsubscribe` acts on: the live connection
/// items of its users and connection ids, exclusions applied, each once (with its
/// `expires_at`, which a subscription item copies), and the expired ones to prune.
#[derive(Debug, Default)]
pub struct Connections {
    pub live: Vec<ConnectionItem>,
    pub expired: Vec<ConnectionKey>,
}

/// Looks up a request's connections (users and connection ids, as for a push) and filters
/// them with the one [`select`].
pub async fn live_connections<S: ConnectionStore>(
    store: &S,
    limits: &Limits,
    request: &Request,
    now_epoch_seconds: i64,
) -> Result<Connections, StoreError> {
    let (found, _) = look_up_connections(store, limits, request, false).await?;
    let expires_at: HashMap<String, Option<i64>> = found
        .iter()
        .map(|item| (item.key.connection_id.clone(), item.expires_at))
        .collect();
    let candidates = found
        .into_iter()
        .map(|item| Candidate::connection(item, now_epoch_seconds))
        .collect();
    let selection = select(
        candidates,
        &request.fields.exclude_users,
        &request.fields.exclude_connections,
    );
    Ok(Connections {
        live: selection
            .live
            .into_iter()
            .map(|target| ConnectionItem {
                expires_at: expires_at.get(&target.key.connection_id).copied().flatten(),
                key: target.key,
            })
            .collect(),
        expired: selection.expired,
    })
}

/// Every item of every partition of every publication's channel, one list per publication
/// (expired items and duplicates included). At most `lookup_concurrency` Queries at once,
/// over all channels.
async fn look_up_subscribers<S: SubscriptionStore>(
    store: &S,
    limits: &Limits,
    publications: &[Planned],
) -> Result<Vec<Vec<SubscriptionItem>>, StoreError> {
    let queries = publications.iter().enumerate().flat_map(|(at, planned)| {
        planned
            .channel
            .partitions()
            .into_iter()
            .map(move |pattern| (at, pattern.to_string()))
    });
    let pages: Vec<(usize, Vec<SubscriptionItem>)> = futures::stream::iter(queries)
        .map(|(at, pattern)| async move {
            let items = store.query_subscriptions(&pattern).await?;
            Ok::<_, StoreError>((at, items))
        })
        .buffer_unordered(limits.lookup_concurrency.max(1))
        .try_collect()
        .await?;
    let mut found = vec![Vec::new(); publications.len()];
    for (at, items) in pages {
        found[at].extend(items);
    }
    Ok(found)
}

#[derive(Debug, Clone, Copy)]
enum Lookup<'a> {
    User(&'a str),
    Connection(&'a str),
}

/// What one invocation reads of a broadcast, and what it hands on.
struct BroadcastPlan {
    /// Read here, each up to `quota` items.
    ranges: Vec<Shard>,
    quota: u32,
    /// Sent to the queue for other invocations.
    siblings: Vec<Shard>,
}

/// Every candidate connection item (expired ones included, duplicates possible), and the
/// shards of a large broadcast that other invocations are to handle.
async fn look_up_connections<S: ConnectionStore>(
    store: &S,
    limits: &Limits,
    request: &Request,
    can_shard: bool,
) -> Result<(Vec<ConnectionItem>, Vec<Shard>), StoreError> {
    let concurrency = limits.lookup_concurrency.max(1);
    match &request.targets {
        Targets::Broadcast if can_shard || request.shard.is_some() => {
            let plan = plan_broadcast(store, limits, request, can_shard).await;
            let quota = plan.quota;
            let pages: Vec<_> = futures::stream::iter(plan.ranges)
                .map(|range| async move {
                    let after = range.after.clone().map(ConnectionKey::from);
                    let page = store
                        .scan_page(range.segment, range.segments, after, quota)
                        .await?;
                    Ok::<_, StoreError>((range, page))
                })
                .buffer_unordered(concurrency)
                .try_collect()
                .await?;
            let mut shards = plan.siblings;
            let mut found = Vec::new();
            for (range, page) in pages {
                found.extend(page.items);
                if let Some(next) = page.next {
                    // The rest of this segment: the next invocation goes on from here.
                    shards.push(Shard {
                        after: Some(next.into()),
                        ..range
                    });
                }
            }
            Ok((found, shards))
        }
        Targets::Broadcast => {
            let segments = limits.scan_segments.max(1);
            let found = futures::stream::iter(0..segments)
                .map(|segment| store.scan_segment(segment, segments))
                .buffer_unordered(concurrency)
                .try_concat()
                .await?;
            Ok((found, Vec::new()))
        }
        Targets::Selected { users, connections } => {
            // An excluded user's connections would be dropped anyway: skip the Query.
            let excluded: HashSet<&str> = request
                .fields
                .exclude_users
                .iter()
                .map(String::as_str)
                .collect();
            let lookups = users
                .iter()
                .filter(|user| !excluded.contains(user.as_str()))
                .map(|user| Lookup::User(user))
                .chain(
                    connections
                        .iter()
                        .map(|connection| Lookup::Connection(connection)),
                );
            let found = futures::stream::iter(lookups)
                .map(|lookup| async move {
                    match lookup {
                        Lookup::User(user) => store.query_user(user).await,
                        Lookup::Connection(id) => {
                            Ok(store.find_connection(id).await?.into_iter().collect())
                        }
                    }
                })
                .buffer_unordered(concurrency)
                .try_concat()
                .await?;
            Ok((found, Vec::new()))
        }
        // Publications read the subscriptions table (`plan`); they never come here.
        Targets::Channels(_) => Ok((Vec::new(), Vec::new())),
    }
}

/// A shard reads its own range. A back end's broadcast asks the table's approximate size:
/// over the threshold, it is split into that many Scan segments (this invocation keeps
/// segment 0, the queue gets the others); otherwise it is read here in the usual parallel
/// segments, each to its share of the threshold. Either way no invocation reads more than
/// the threshold: a range with more left hands its remainder on (a stale estimate costs
/// time, never the bound).
async fn plan_broadcast<S: ConnectionStore>(
    store: &S,
    limits: &Limits,
    request: &Request,
    can_shard: bool,
) -> BroadcastPlan {
    let threshold = if can_shard {
        limits.shard_threshold
    } else {
        u32::MAX
    };
    if let Some(shard) = &request.shard {
        return BroadcastPlan {
            ranges: vec![shard.clone()],
            quota: threshold,
            siblings: Vec::new(),
        };
    }
    let estimate = match store.approximate_count().await {
        Ok(estimate) => estimate,
        Err(error) => {
            tracing::warn!(%error, "no item count; the broadcast is split as it is read");
            None
        }
    };
    let shards = estimate
        .map_or(1, |count| count.div_ceil(u64::from(threshold)))
        .clamp(1, MAX_SHARDS) as u32;
    let scan = |segment, segments| Shard {
        segment,
        segments,
        after: None,
    };
    if shards > 1 {
        tracing::info!(
            estimate,
            shards,
            threshold,
            "splitting the broadcast into shards"
        );
        BroadcastPlan {
            ranges: vec![scan(0, shards)],
            quota: threshold,
            siblings: (1..shards).map(|segment| scan(segment, shards)).collect(),
        }
    } else {
        // Shares that add up to at most the threshold.
        let segments = limits.scan_segments.clamp(1, threshold.max(1));
        BroadcastPlan {
            ranges: (0..segments)
                .map(|segment| scan(segment, segments))
                .collect(),
            quota: threshold / segments,
            siblings: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(user: &str, connection: &str, expires_at: Option<i64>) -> Candidate {
        let item = ConnectionItem {
            key: ConnectionKey {
                user_id: user.into(),
                connection_id: connection.into(),
            },
            expires_at,
        };
        Candidate::connection(item, 100)
    }

    fn subscription(pattern: &str, connection: &str, user: &str, expires_at: i64) -> Candidate {
        let item = SubscriptionItem {
            key: SubscriptionKey {
                channel: pattern.into(),
                connection_id: connection.into(),
            },
            user_id: user.into(),
            expires_at: Some(expires_at),
            subscribed_at: None,
        };
        Candidate::subscription(item, 100)
    }

    #[test]
    fn selection_dedups_excludes_and_separates_expired() {
        let found = vec![
            item("u1", "a", Some(200)),
            item("u1", "a", Some(200)),
            item("u2", "b", Some(100)),
            item("u3", "c", Some(200)),
            item("u3", "d", Some(50)),
            item("u4", "e", None),
            item("u5", "f", Some(200)),
        ];
        let selection = select(found, &["u3".into()], &["f".into()]);
        let live: Vec<&str> = selection
            .live
            .iter()
            .map(|t| t.key.connection_id.as_str())
            .collect();
        let expired: Vec<&str> = selection
            .expired
            .iter()
            .map(|k| k.connection_id.as_str())
            .collect();
        assert_eq!(live, ["a", "e"], "u3 and connection f are excluded");
        // Expiry is checked at `expires_at <= now`; an excluded user's expired item is pruned too.
        assert_eq!(expired, ["b", "d"]);
    }

    #[test]
    fn subscribers_are_deduplicated_across_partitions_and_filtered() {
        let mut found = vec![
            subscription("room/42", "a", "u1", 200),
            subscription("room/*", "a", "u1", 200),
            subscription("*", "b", "u2", 200),
            subscription("room/42", "c", "u3", 50),
            subscription("room/*", "d", "u4", 200),
            subscription("room/42", "e", "u5", 200),
        ];
        let no_expiry = SubscriptionItem {
            key: SubscriptionKey {
                channel: "room/42".into(),
                connection_id: "f".into(),
            },
            user_id: "u6".into(),
            expires_at: None,
            subscribed_at: None,
        };
        found.push(Candidate::subscription(no_expiry, 100));
        let selected = select(found, &["u4".into()], &["e".into()]);
        let live: Vec<(&str, usize)> = selected
            .live
            .iter()
            .map(|s| (s.key.connection_id.as_str(), s.via.len()))
            .collect();
        assert_eq!(live, [("a", 2), ("b", 1)]);
        assert_eq!(selected.live[0].key.user_id, "u1");
        let expired: Vec<&str> = selected
            .expired_subscriptions
            .iter()
            .map(|k| k.connection_id.as_str())
            .collect();
        assert_eq!(
            expired,
            ["c", "f"],
            "without expires_at a subscription is not live"
        );
    }
}
