//! JSON-RPC error codes used on the wire (the standard ones plus what the MCP SDKs use).

/// The body is not JSON.
pub const PARSE_ERROR: i64 = -32700;
/// JSON, but not a valid JSON-RPC message.
pub const INVALID_REQUEST: i64 = -32600;
/// No such method.
pub const METHOD_NOT_FOUND: i64 = -32601;
/// Bad params: unknown tool, missing argument, bad cursor.
pub const INVALID_PARAMS: i64 = -32602;
/// The gateway failed (a panic in a worker, a server that died mid-call).
pub const INTERNAL_ERROR: i64 = -32603;
/// A server is down or its pool had no free handle within `acquireTimeout`.
pub const SERVER_UNAVAILABLE: i64 = -32000;
/// The downstream call did not answer within its timeout (the SDKs' code for a request timeout).
pub const REQUEST_TIMEOUT: i64 = -32001;
/// MCP: resource not found.
pub const RESOURCE_NOT_FOUND: i64 = -32002;
/// The client cancelled the request (the code LSP uses; MCP sends no answer on streams).
pub const REQUEST_CANCELLED: i64 = -32800;
