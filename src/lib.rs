//! warmline: a webhook gateway that gives voice-AI phone agents instant caller
//! context from slow SaaS systems.
//!
//! Data flows one way: webhooks → calls → cache → upstreams, and
//! calls → writebehind → store; the write-back worker takes what the
//! write-behind queued to the upstreams. `tests/api/layers.rs` enforces the
//! direction. See README.md for the architecture.

pub mod admin;
pub mod bots;
pub mod cache;
pub mod calls;
pub mod cli;
pub mod demo;
pub mod domain;
pub mod error;
pub mod http;
pub mod loadgen;
pub mod settings;
pub mod simulator;
pub mod startup;
pub mod store;
pub mod support;
pub mod telemetry;
pub mod tenants;
pub mod upstreams;
pub mod webhooks;
pub mod writeback;
pub mod writebehind;
