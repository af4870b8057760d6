//! Cost of authorizing one `$connect` with a warm key cache: the whole `handle` call (token
//! extraction, parsing, key lookup, signature verification, claim checks, policy), per algorithm.
//! Run with `scripts/bench authorizer` (or `cargo bench -p authorizer`).

#[path = "../tests/support/mod.rs"]
mod support;

use authorizer::{handle, Authorizer};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use jsonwebtoken::Algorithm;
use support::*;

const ISSUER: &str = "https://issuer.bench";

fn warm_cache_verification(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let keys = [
        ("RS256", TestKey::generate(Algorithm::RS256, "rsa")),
        ("ES256", TestKey::generate(Algorithm::ES256, "p256")),
        ("ES384", TestKey::generate(Algorithm::ES384, "p384")),
        ("EdDSA", TestKey::generate(Algorithm::EdDSA, "ed25519")),
    ];
    let server = runtime.block_on(KeyServer::start(jwks(
        &keys.iter().map(|(_, k)| k).collect::<Vec<_>>(),
    )));
    let mut config = config(vec![issuer(ISSUER, server.uri())]);
    config.refetch_interval = std::time::Duration::from_secs(3600);
    let authorizer = Authorizer::new(config);

    let mut group = c.benchmark_group("authorize_warm_cache");
    for (name, key) in &keys {
        let claims = good_claims(ISSUER);
        let mut long_lived = claims.clone();
        long_lived["exp"] = serde_json::json!(now() + 24 * 3600);
        let event = connect_with_header(&key.sign(&long_lived));
        // Warm the cache and prove the token is allowed: a benchmark of refusals would lie.
        let warm = runtime.block_on(handle(event.clone(), &authorizer));
        let allowed = warm.as_ref().is_ok_and(|response| {
            response.policy_document.statement[0].effect
                == aws_lambda_events::iam::IamPolicyEffect::Allow
        });
        assert!(allowed, "{name}: {warm:?}");
        cpu_time_per_token(name, &runtime, &authorizer, &event);
        group.bench_function(*name, |b| {
            b.iter_batched(
                || event.clone(),
                |event| runtime.block_on(handle(event, &authorizer)),
                BatchSize::SmallInput,
            )
        });
    }
    // The same RS256 token with a grants claim of 20 patterns and two static grants: what
    // channel grants add to a `$connect` (validation, {sub}, merge, the context strings).
    let mut with_grants = support::config(vec![issuer(ISSUER, server.uri())]);
    with_grants.refetch_interval = std::time::Duration::from_secs(3600);
    with_grants.static_grants = authorizer::StaticGrants {
        subscribe: vec!["public/*".into(), "user/{sub}".into()],
        publish: vec!["user/{sub}/*".into()],
    };
    let granting = Authorizer::new(with_grants);
    let mut claims = good_claims(ISSUER);
    claims["exp"] = serde_json::json!(now() + 24 * 3600);
    let rooms: Vec<String> = (0..20).map(|i| format!("room/{i}/*")).collect();
    claims["channels"] = serde_json::json!({"subscribe": rooms, "publish": ["room/*"]});
    let event = connect_with_header(&keys[0].1.sign(&claims));
    let warm = runtime
        .block_on(handle(event.clone(), &granting))
        .expect("allowed");
    assert_eq!(
        warm.context["channels_publish"], "user/user-1/* room/*",
        "the grants were used"
    );
    cpu_time_per_token("RS256+grants", &runtime, &granting, &event);
    group.bench_function("RS256+grants", |b| {
        b.iter_batched(
            || event.clone(),
            |event| runtime.block_on(handle(event, &granting)),
            BatchSize::SmallInput,
        )
    });
    group.finish();
    assert_eq!(server.hits(), 2, "the caches stayed warm");
}

/// Criterion reports wall time, which on a shared machine includes waiting for a core. This
/// prints the CPU time the benchmark thread itself spent per token, which load does not inflate.
fn cpu_time_per_token(
    name: &str,
    runtime: &tokio::runtime::Runtime,
    authorizer: &Authorizer,
    event: &lambda_runtime::LambdaEvent<
        aws_lambda_events::apigw::ApiGatewayCustomAuthorizerRequestTypeRequest,
    >,
) {
    const TOKENS: u32 = 2000;
    let events: Vec<_> = (0..TOKENS).map(|_| event.clone()).collect();
    let start = thread_cpu_time();
    for event in events {
        let _ = runtime.block_on(handle(event, authorizer));
    }
    let per_token = (thread_cpu_time() - start) / TOKENS;
    println!(
        "authorize_warm_cache/{name}: thread CPU time {:.1} µs/token ({TOKENS} tokens)",
        per_token.as_secs_f64() * 1e6
    );
}

fn thread_cpu_time() -> std::time::Duration {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime only writes the timespec we pass.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) };
    std::time::Duration::new(now.tv_sec as u64, now.tv_nsec as u32)
}

criterion_group!(benches, warm_cache_verification);
criterion_main!(benches);
