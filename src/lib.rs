//! warmline: a webhook gateway that gives voice-AI phone agents instant caller
//! context from slow SaaS systems.
//!
//! Data flows one way: webhooks → calls → cache → upstreams, and
//! calls → writebehind → store. See README.md for the architecture.

pub mod admin;
pub mod assets;
pub mod breaker;
pub mod cache;
pub mod calls;
pub mod cli;
pub mod demo;
pub mod domain;
pub mod error;
pub mod health;
pub mod settings;
pub mod simulator;
pub mod startup;
pub mod store;
pub mod telemetry;
pub mod tenants;
pub mod upstreams;
pub mod webhooks;
pub mod writebehind;
