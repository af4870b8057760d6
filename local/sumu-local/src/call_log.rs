//! The record of the AWS calls sumu-local answers itself: the management API (`@connections`),
//! which the pusher calls as `execute-api:ManageConnections`. The calls to DynamoDB, SNS and SQS
//! are recorded by the proxy in front of moto (tests/iam/recorder.py) into the same file, in the
//! same shape, and `scripts/test` checks them all against the roles Terraform applied
//! (docs/least-privilege.md).
//!
//! One JSON object per line: `caller` (the access key id, which names the role: see
//! [`roles`](crate::roles)), `call` (what was called, for the report) and `needs`, the IAM
//! actions and resource ARNs the call is authorized as. Lines are appended with one `write`
//! each to a file opened for appending, so the proxy's lines and these never interleave.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

use serde_json::json;

/// An open call log.
#[derive(Debug)]
pub struct CallLog {
    file: Mutex<File>,
}

impl CallLog {
    /// Opens `path` for appending, creating it.
    pub fn open(path: &Path) -> std::io::Result<CallLog> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(CallLog {
            file: Mutex::new(file),
        })
    }

    /// Records one call needing `action` on `resource`. A failed write is logged, never fatal:
    /// the check then misses a call, and its own coverage rule (every component seen) says so.
    pub fn record(&self, caller: &str, call: &str, action: &str, resource: &str) {
        let mut line = json!({
            "caller": caller,
            "call": call,
            "needs": [{ "action": action, "resource": resource }],
        })
        .to_string();
        line.push('\n');
        let mut file = self
            .file
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Err(error) = file.write_all(line.as_bytes()) {
            tracing::warn!(%error, "could not append to the AWS call log");
        }
    }
}

/// The access key id of a SigV4 `Authorization` header
/// (`AWS4-HMAC-SHA256 Credential=AKID/20261204/us-east-1/execute-api/aws4_request, …`).
pub fn access_key_id(authorization: &str) -> Option<&str> {
    let credential = authorization.split("Credential=").nth(1)?;
    let key = credential.split('/').next()?;
    (!key.is_empty()).then_some(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_access_key_id_is_read_from_a_sigv4_authorization_header() {
        let header = "AWS4-HMAC-SHA256 Credential=sumu-role-pusher/20261204/us-east-1/execute-api/aws4_request, SignedHeaders=host;x-amz-date, Signature=abc";
        assert_eq!(access_key_id(header), Some("sumu-role-pusher"));
        assert_eq!(access_key_id("Bearer x"), None);
        assert_eq!(access_key_id("AWS4-HMAC-SHA256 Credential=/x"), None);
    }

    #[test]
    fn each_call_is_one_json_line_appended() {
        let dir = std::env::temp_dir().join(format!("sumu-call-log-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("calls.jsonl");
        let _ = std::fs::remove_file(&path);
        std::fs::write(&path, "{\"earlier\":true}\n").expect("an earlier line");
        let log = CallLog::open(&path).expect("open");
        log.record(
            "k",
            "POST /@connections",
            "execute-api:ManageConnections",
            "arn:a",
        );
        let text = std::fs::read_to_string(&path).expect("read");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        let record: serde_json::Value = serde_json::from_str(lines[1]).expect("JSON");
        assert_eq!(
            record,
            json!({"caller":"k","call":"POST /@connections","needs":[{"action":"execute-api:ManageConnections","resource":"arn:a"}]})
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
