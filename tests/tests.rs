//! The integration suite: every test starts the real `claude-bridge` binary on a free loopback
//! port with its own temporary db and talks to it over raw HTTP (no mocks).

mod support;

mod agents;
mod api;
mod cli;
mod concurrency;
mod conformance;
mod corpus;
mod dashboard;
mod delivery;
mod eras;
mod events;
mod faults;
mod hardening;
mod limits;
mod login;
mod malformed;
mod mcp;
mod migration;
mod operate;
mod policy;
mod queue;
#[cfg(feature = "tls")]
mod tls;
#[cfg(feature = "tui")]
mod tui;
mod wake;
