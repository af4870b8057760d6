//! A client for API Gateway's WebSocket management API: `POST {stage}/@connections/{id}` (and
//! `DELETE`, which closes the connection), SigV4-signed, over HTTP/1.1 keep-alive connections. See README.md (why not the SDK, what it
//! guarantees, its tests and its benchmark).
//!
//! [`ManagementClient`] posts and classifies the answer as a [`PostOutcome`], or closes a
//! connection and classifies the answer as a [`DeleteOutcome`]. Its two layers are
//! public for the benchmark, which measures them alone: [`http1`] (the pool of HTTP/1.1
//! connections and the one exchange the client needs on them) and [`sigv4`] (the signature).

mod client;
pub mod http1;
pub mod sigv4;

pub use client::{DeleteOutcome, ManagementClient, PostOutcome};
