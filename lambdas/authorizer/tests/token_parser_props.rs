//! The token extractor and parser run on attacker-controlled bytes: whatever arrives, they
//! return an answer and never panic.

use authorizer::token::{parse, token_from_credentials, MAX_TOKEN_BYTES};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use proptest::prelude::*;

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let text = String::from_utf8_lossy(&bytes);
        if let Ok(token) = token_from_credentials(&text) {
            prop_assert!(token.len() <= MAX_TOKEN_BYTES);
            let _ = parse(token);
        }
        let _ = parse(&text);
    }

    /// Three base64url segments of arbitrary bytes reach the JSON decoding of header and payload.
    #[test]
    fn well_shaped_segments_of_arbitrary_content_never_panic(
        header in proptest::collection::vec(any::<u8>(), 0..256),
        payload in proptest::collection::vec(any::<u8>(), 0..256),
        signature in proptest::collection::vec(any::<u8>(), 1..128),
    ) {
        let token = format!(
            "{}.{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(payload),
            URL_SAFE_NO_PAD.encode(signature)
        );
        let _ = parse(&token);
    }

    /// JSON-ish headers with arbitrary `alg` and `kid` values.
    #[test]
    fn arbitrary_header_fields_never_panic(alg in ".{0,24}", kid in ".{0,24}", claims in "\\{.{0,64}\\}") {
        let header = serde_json::json!({"alg": alg, "kid": kid}).to_string();
        let token = format!(
            "{}.{}.c2ln",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(claims)
        );
        let _ = parse(&token);
    }
}
