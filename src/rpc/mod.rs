//! JSON-RPC 2.0 as MCP uses it: classifying what a client sent, error codes, and writing responses.
//!
//! Ids are kept as the exact JSON text the client sent (`Id`), so a response echoes `1` as `1` and
//! `"1"` as `"1"` — they are different ids. Payloads we only pass along (`result` of a downstream call,
//! a request's `params`) stay raw JSON text (`RawValue`, `Params`) and are never re-encoded.

pub mod codes;
mod message;
mod params;
pub mod stamp;
mod write;

pub use message::{classify, Id, Incoming, Invalid};
pub use params::{NotParams, Params};
pub use write::{
    error_response, error_response_with_data, notification, raw_error_response, request,
    result_response,
};
