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
/// 2026-07-28: the `MCP-Protocol-Version`, `Mcp-Method` or `Mcp-Name` header disagrees with the body.
pub const HEADER_MISMATCH: i64 = -32020;
/// 2026-07-28: the requested protocol version is not one the gateway speaks (`data.supported`).
pub const UNSUPPORTED_PROTOCOL_VERSION: i64 = -32022;

/// The HTTP status of a 2026-07-28 error answer: invalid input and refused versions are 400, an
/// unknown method is 404; anything else rides a 200 (as the SDKs do: the spec gives it no status).
pub fn modern_http_status(code: i64) -> u16 {
    match code {
        PARSE_ERROR
        | INVALID_REQUEST
        | INVALID_PARAMS
        | HEADER_MISMATCH
        | -32021
        | UNSUPPORTED_PROTOCOL_VERSION => 400,
        METHOD_NOT_FOUND => 404,
        _ => 200,
    }
}
