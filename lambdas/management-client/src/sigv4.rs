//! AWS Signature Version 4 for the management API's requests: `POST` or `DELETE
//! {base}/@connections/{id}` to `execute-api`, signed headers `host;x-amz-date[;x-amz-security-token]`, in the
//! `Authorization` header. Pure (time and credentials are arguments), so a test proves it
//! equals `aws-sigv4`'s signature for the same inputs.
//!
//! Why not `aws-sigv4` itself: it derives the signing key (four HMACs) and builds its canonical
//! request from a general header map on every call. Here the key is derived once per
//! credentials and UTC day ([`DayKey`]), the credential scope and the `Authorization` prefix
//! are kept with it, and the canonical request is one buffer (README.md has the figures).

use std::time::{SystemTime, UNIX_EPOCH};

use aws_lc_rs::{digest, hmac};

/// `execute-api`: the management API's signing name.
pub const SERVICE: &str = "execute-api";

/// The credentials one signature uses.
#[derive(Clone, PartialEq, Eq)]
pub struct Keys {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keys")
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

/// Whole days and seconds since the epoch, and the two date forms SigV4 uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timestamp {
    pub epoch_seconds: u64,
}

impl Timestamp {
    pub fn now() -> Timestamp {
        Timestamp::from(SystemTime::now())
    }

    pub fn day(&self) -> u64 {
        self.epoch_seconds / 86_400
    }

    /// `YYYYMMDD` (the credential scope's date).
    pub fn date(&self) -> String {
        let mut date = String::with_capacity(16);
        self.push_date(&mut date);
        date
    }

    /// `YYYYMMDDTHHMMSSZ` (the `x-amz-date` header). Digits pushed by hand, not `format!`:
    /// this runs once per post.
    pub fn amz_date(&self) -> String {
        let seconds = self.epoch_seconds % 86_400;
        let mut date = String::with_capacity(16);
        self.push_date(&mut date);
        date.push('T');
        for part in [seconds / 3600, seconds / 60 % 60, seconds % 60] {
            push_digits(part, 2, &mut date);
        }
        date.push('Z');
        date
    }

    fn push_date(&self, out: &mut String) {
        let (year, month, day) = civil_from_days(self.day() as i64);
        push_digits(year.clamp(0, 9999) as u64, 4, out);
        push_digits(u64::from(month), 2, out);
        push_digits(u64::from(day), 2, out);
    }
}

/// `value`'s last `width` decimal digits, zero-padded.
fn push_digits(value: u64, width: u32, out: &mut String) {
    for place in (0..width).rev() {
        let digit = value / 10u64.pow(place) % 10;
        out.push(char::from(b'0' + digit as u8));
    }
}

impl From<SystemTime> for Timestamp {
    fn from(time: SystemTime) -> Timestamp {
        Timestamp {
            epoch_seconds: time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()),
        }
    }
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Everything that stays the same for one set of credentials, one region and one UTC day.
pub struct DayKey {
    day: u64,
    keys: Keys,
    key: hmac::Key,
    /// `YYYYMMDD/{region}/execute-api/aws4_request`
    scope: String,
    /// `AWS4-HMAC-SHA256 Credential=…, SignedHeaders=…, Signature=`
    authorization_prefix: String,
    signed_headers: &'static str,
}

impl DayKey {
    pub fn new(keys: Keys, region: &str, at: Timestamp) -> DayKey {
        let date = at.date();
        let mut key = hmac::sign(
            &hmac::Key::new(
                hmac::HMAC_SHA256,
                format!("AWS4{}", keys.secret_access_key).as_bytes(),
            ),
            date.as_bytes(),
        );
        for part in [region, SERVICE, "aws4_request"] {
            key = hmac::sign(
                &hmac::Key::new(hmac::HMAC_SHA256, key.as_ref()),
                part.as_bytes(),
            );
        }
        let scope = format!("{date}/{region}/{SERVICE}/aws4_request");
        let signed_headers = if keys.session_token.is_some() {
            "host;x-amz-date;x-amz-security-token"
        } else {
            "host;x-amz-date"
        };
        let authorization_prefix = format!(
            "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed_headers}, Signature=",
            keys.access_key_id
        );
        DayKey {
            day: at.day(),
            key: hmac::Key::new(hmac::HMAC_SHA256, key.as_ref()),
            keys,
            scope,
            authorization_prefix,
            signed_headers,
        }
    }

    /// Whether this key signs requests made at `at` (the derived key is per UTC day).
    pub fn is_for_day(&self, at: Timestamp) -> bool {
        self.day == at.day()
    }

    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    pub fn session_token(&self) -> Option<&str> {
        self.keys.session_token.as_deref()
    }

    /// The `Authorization` header of `POST {path}` to `host` at `amz_date` with a payload whose
    /// SHA-256 is `payload_sha256_hex`. `path` is the request path as sent (already
    /// percent-encoded); SigV4 for services other than S3 encodes it once more.
    pub fn authorization(
        &self,
        host: &str,
        path: &str,
        amz_date: &str,
        payload_sha256_hex: &str,
    ) -> String {
        self.authorization_of("POST", host, path, amz_date, payload_sha256_hex)
    }

    /// [`DayKey::authorization`] for a request with another `method` (`DELETE`: close a
    /// connection, with an empty payload, [`EMPTY_PAYLOAD_SHA256`]).
    pub fn authorization_of(
        &self,
        method: &str,
        host: &str,
        path: &str,
        amz_date: &str,
        payload_sha256_hex: &str,
    ) -> String {
        // Sized for the whole request (a session token is ~1 KB): one allocation, no growth.
        let token_length = self.session_token().map_or(0, str::len);
        let mut canonical = String::with_capacity(256 + 3 * path.len() + host.len() + token_length);
        canonical.push_str(method);
        canonical.push('\n');
        encode_path_into(path, &mut canonical);
        canonical.push_str("\n\nhost:");
        canonical.push_str(host);
        canonical.push_str("\nx-amz-date:");
        canonical.push_str(amz_date);
        if let Some(token) = self.session_token() {
            canonical.push_str("\nx-amz-security-token:");
            canonical.push_str(token);
        }
        canonical.push_str("\n\n");
        canonical.push_str(self.signed_headers);
        canonical.push('\n');
        canonical.push_str(payload_sha256_hex);

        let mut string_to_sign = String::with_capacity(160);
        string_to_sign.push_str("AWS4-HMAC-SHA256\n");
        string_to_sign.push_str(amz_date);
        string_to_sign.push('\n');
        string_to_sign.push_str(&self.scope);
        string_to_sign.push('\n');
        push_hex(
            digest::digest(&digest::SHA256, canonical.as_bytes()).as_ref(),
            &mut string_to_sign,
        );

        let mut authorization = String::with_capacity(self.authorization_prefix.len() + 64);
        authorization.push_str(&self.authorization_prefix);
        push_hex(
            hmac::sign(&self.key, string_to_sign.as_bytes()).as_ref(),
            &mut authorization,
        );
        authorization
    }
}

/// The SHA-256 of an empty payload, lower-case hex (a `DELETE` has no body).
pub const EMPTY_PAYLOAD_SHA256: &str =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// Lower-case hex of the SHA-256 of `payload`.
pub fn sha256_hex(payload: &[u8]) -> String {
    let mut hex = String::with_capacity(64);
    push_hex(digest::digest(&digest::SHA256, payload).as_ref(), &mut hex);
    hex
}

fn push_hex(bytes: &[u8], out: &mut String) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for byte in bytes {
        out.push(DIGITS[usize::from(byte >> 4)] as char);
        out.push(DIGITS[usize::from(byte & 0x0f)] as char);
    }
}

fn push_percent_encoded(byte: u8, out: &mut String) {
    const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
    out.push('%');
    out.push(DIGITS[usize::from(byte >> 4)] as char);
    out.push(DIGITS[usize::from(byte & 0x0f)] as char);
}

/// RFC 3986 unreserved characters are kept, everything else is `%XX` (upper case).
fn is_unreserved(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~')
}

fn encode_into(text: &str, keep_slash: bool, out: &mut String) {
    for &byte in text.as_bytes() {
        if is_unreserved(byte) || (keep_slash && byte == b'/') {
            out.push(byte as char);
        } else {
            push_percent_encoded(byte, out);
        }
    }
}

/// A connection id as one path segment (API Gateway's ids end in `=`).
pub fn encode_segment(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len() + 8);
    encode_segment_into(segment, &mut out);
    out
}

/// [`encode_segment`], appended to `out`.
pub fn encode_segment_into(segment: &str, out: &mut String) {
    encode_into(segment, false, out);
}

fn encode_path_into(path: &str, out: &mut String) {
    encode_into(path, true, out);
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
    use std::time::Duration;

    const HOST: &str = "abc123.execute-api.eu-west-1.amazonaws.com";

    fn keys(token: Option<&str>) -> Keys {
        Keys {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
            session_token: token.map(str::to_string),
        }
    }

    /// `aws-sigv4`'s Authorization header (and the headers it added) for the same request.
    fn reference(
        keys: &Keys,
        time: SystemTime,
        method: &str,
        path: &str,
        body: &[u8],
    ) -> (String, Vec<String>) {
        let identity = aws_credential_types::Credentials::new(
            &keys.access_key_id,
            &keys.secret_access_key,
            keys.session_token.clone(),
            None,
            "test",
        )
        .into();
        let params = aws_sigv4::sign::v4::SigningParams::builder()
            .identity(&identity)
            .region("eu-west-1")
            .name(SERVICE)
            .time(time)
            .settings(SigningSettings::default())
            .build()
            .unwrap()
            .into();
        let url = format!("https://{HOST}{path}");
        let request = SignableRequest::new(
            method,
            &url,
            [("host", HOST)].into_iter(),
            SignableBody::Bytes(body),
        )
        .unwrap();
        let (instructions, _) = sign(request, &params).unwrap().into_parts();
        let mut authorization = String::new();
        let mut names = Vec::new();
        for (name, value) in instructions.headers() {
            names.push(name.to_string());
            if name == "authorization" {
                authorization = value.to_string();
            }
        }
        names.sort();
        (authorization, names)
    }

    #[test]
    fn the_signature_equals_aws_sigv4s_for_the_same_time_credentials_and_request() {
        let time = UNIX_EPOCH + Duration::from_secs(1_764_612_345); // 2025-12-01T18:05:45Z
        let body = br#"{"type":"chat","text":"h\u00e9llo"}"#;
        let path = format!("/prod/@connections/{}", encode_segment("L0SM9cOFvHcCIhw="));
        assert_eq!(path, "/prod/@connections/L0SM9cOFvHcCIhw%3D");
        for token in [Some("IQoJb3JpZ2luX2VjE///session+token=="), None] {
            let keys = keys(token);
            let at = Timestamp::from(time);
            assert_eq!(at.amz_date(), "20251201T180545Z");
            let ours = DayKey::new(keys.clone(), "eu-west-1", at).authorization(
                HOST,
                &path,
                &at.amz_date(),
                &sha256_hex(body),
            );
            let (theirs, added) = reference(&keys, time, "POST", &path, body);
            assert_eq!(ours, theirs, "session token {token:?}");
            // What aws-sigv4 adds is what the client sends: the date and the token.
            let mut expected = vec!["authorization", "x-amz-date"];
            if token.is_some() {
                expected.push("x-amz-security-token");
            }
            assert_eq!(added, expected);
        }
    }

    #[test]
    fn a_delete_is_signed_as_aws_sigv4_signs_it() {
        let time = UNIX_EPOCH + Duration::from_secs(1_764_612_345);
        let path = format!("/prod/@connections/{}", encode_segment("L0SM9cOFvHcCIhw="));
        assert_eq!(sha256_hex(b""), EMPTY_PAYLOAD_SHA256);
        for token in [Some("IQoJb3JpZ2luX2VjE///session+token=="), None] {
            let keys = keys(token);
            let at = Timestamp::from(time);
            let ours = DayKey::new(keys.clone(), "eu-west-1", at).authorization_of(
                "DELETE",
                HOST,
                &path,
                &at.amz_date(),
                EMPTY_PAYLOAD_SHA256,
            );
            let (theirs, _) = reference(&keys, time, "DELETE", &path, b"");
            assert_eq!(ours, theirs, "session token {token:?}");
        }
    }

    #[test]
    fn the_day_key_is_for_one_utc_day() {
        let before = Timestamp {
            epoch_seconds: 20_000 * 86_400 - 1,
        };
        let after = Timestamp {
            epoch_seconds: 20_000 * 86_400,
        };
        let key = DayKey::new(keys(None), "us-east-1", before);
        assert!(key.is_for_day(before));
        assert!(!key.is_for_day(after));
        assert_eq!(before.amz_date(), "20241003T235959Z");
        assert_eq!(after.amz_date(), "20241004T000000Z");
    }

    #[test]
    fn dates_are_right_across_leap_days_and_centuries() {
        for (days, date) in [
            (0, "19700101"),
            (11_016, "20000229"),
            (19_782, "20240229"),
            (19_783, "20240301"),
            (47_541, "21000301"),
        ] {
            let at = Timestamp {
                epoch_seconds: days * 86_400 + 3_599,
            };
            assert_eq!(at.date(), date, "day {days}");
        }
    }
}
