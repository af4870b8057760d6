//! The `sumu-local` binary's offline commands: `token` and `render`.

use std::path::PathBuf;
use std::process::Command;

use sumu_local::dev_idp::{DevIdentityProvider, DEV_AUDIENCE, DEV_ISSUER};

fn binary() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sumu-local"))
}

fn scratch() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sumu-cli-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn token_prints_a_jwt_signed_by_the_key_the_server_serves() {
    let dir = scratch();
    let key_file = dir.join("key.p8");
    let output = binary()
        .args(["token", "--sub", "bob", "--ttl", "15m", "--key-file"])
        .arg(&key_file)
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let token = String::from_utf8(output.stdout).unwrap();
    let token = token.trim();

    // The server loads the same file and serves this JWKS.
    let served = DevIdentityProvider::load_or_create(&key_file)
        .unwrap()
        .jwks();
    let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(served["keys"][0].clone()).unwrap();
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
    validation.set_audience(&[DEV_AUDIENCE]);
    validation.set_issuer(&[DEV_ISSUER]);
    let claims = jsonwebtoken::decode::<serde_json::Value>(
        token,
        &jsonwebtoken::DecodingKey::from_jwk(&jwk).unwrap(),
        &validation,
    )
    .unwrap()
    .claims;
    assert_eq!(claims["sub"], "bob");
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        900
    );
    std::fs::remove_dir_all(dir).unwrap();
}

/// The claims of a token printed by `sumu-local token`, verified with the served key.
fn claims_of(output: &std::process::Output, key_file: &std::path::Path) -> serde_json::Value {
    assert!(output.status.success(), "{output:?}");
    let token = String::from_utf8(output.stdout.clone()).unwrap();
    let served = DevIdentityProvider::load_or_create(key_file)
        .unwrap()
        .jwks();
    let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(served["keys"][0].clone()).unwrap();
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
    validation.set_audience(&[DEV_AUDIENCE]);
    jsonwebtoken::decode::<serde_json::Value>(
        token.trim(),
        &jsonwebtoken::DecodingKey::from_jwk(&jwk).unwrap(),
        &validation,
    )
    .unwrap()
    .claims
}

#[test]
fn token_puts_repeatable_subscribe_and_publish_flags_in_the_channels_claim() {
    let dir = scratch();
    let key_file = dir.join("key.p8");
    let output = binary()
        .args(["token", "--sub", "alice", "--subscribe", "room/*"])
        .args(["--subscribe", "user/alice", "--publish", "room/*"])
        .arg("--key-file")
        .arg(&key_file)
        .output()
        .unwrap();
    let claims = claims_of(&output, &key_file);
    assert_eq!(claims["sub"], "alice");
    assert_eq!(
        claims["channels"],
        serde_json::json!({"subscribe": ["room/*", "user/alice"], "publish": ["room/*"]})
    );

    let output = binary()
        .args(["token", "--sub", "bob", "--key-file"])
        .arg(&key_file)
        .output()
        .unwrap();
    let claims = claims_of(&output, &key_file);
    assert!(
        claims.get("channels").is_none(),
        "no flags, no claim: {claims}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn token_refuses_a_bad_pattern_with_a_clear_error() {
    let dir = scratch();
    for (flag, bad, why) in [
        ("--subscribe", "room/**", "`*` is only allowed"),
        ("--publish", "a/b/c/d/e/f", "6 segments"),
        ("--subscribe", "room 42", "not allowed"),
    ] {
        let output = binary()
            .args(["token", "--sub", "alice", flag, bad, "--key-file"])
            .arg(dir.join("key.p8"))
            .output()
            .unwrap();
        assert!(!output.status.success(), "{bad}");
        assert!(output.stdout.is_empty(), "no token printed for {bad}");
        let stderr = String::from_utf8(output.stderr).unwrap();
        assert!(stderr.contains(bad) && stderr.contains(flag), "{stderr}");
        assert!(stderr.contains(why), "{stderr}");
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn render_prints_the_output_and_reports_errors_with_their_position() {
    let dir = scratch();
    let template = dir.join("t.vtl");
    std::fs::write(
        &template,
        "#set($n = $context.requestTimeEpoch / 1000)$stageVariables.table:$n:$input.json('$.a')",
    )
    .unwrap();
    let context = dir.join("ctx.json");
    std::fs::write(&context, r#"{"requestTimeEpoch": 1700000000999}"#).unwrap();
    let body = dir.join("body.json");
    std::fs::write(&body, r#"{"a": {"b": 1}}"#).unwrap();
    let vars = dir.join("vars.json");
    std::fs::write(&vars, r#"{"table": "t1"}"#).unwrap();
    let output = binary()
        .arg("render")
        .arg(&template)
        .arg("--context")
        .arg(&context)
        .arg("--body")
        .arg(&body)
        .arg("--stage-variables")
        .arg(&vars)
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    assert_eq!(
        String::from_utf8(output.stdout).unwrap(),
        r#"t1:1700000000:{"b":1}"#
    );

    let broken = dir.join("broken.vtl");
    std::fs::write(&broken, "line one\n#if($x\n").unwrap();
    let output = binary().arg("render").arg(&broken).output().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("broken.vtl: line "), "{stderr}");
    assert!(stderr.contains("column"), "{stderr}");
    std::fs::remove_dir_all(dir).unwrap();
}
