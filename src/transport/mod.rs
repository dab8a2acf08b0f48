//! MCP transports: how JSON-RPC messages reach [`crate::mcp::handle`] and how replies get back.
//! Transports never interpret tool semantics.

pub mod sse;
pub mod stdio;
