//! MCP transports: how JSON-RPC messages reach [`crate::mcp::handle`] and how replies get back.
//! Transports never interpret tool semantics: `stdio` (lines on stdin/stdout), `sse` (legacy
//! HTTP+SSE) and `streamable` (Streamable HTTP at `/mcp`); `push` is the channel push a
//! `--stdio --push` session adds.

pub mod push;
pub mod sse;
pub mod stdio;
pub mod streamable;
