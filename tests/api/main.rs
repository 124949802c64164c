//! The one integration-test binary: every test spawns the real application
//! (or the real binary) against a fresh database and the real Redis.

mod helpers;

mod admin_api;
mod cache;
mod calls;
mod health;
mod observability;
mod process;
mod retell;
mod store;
mod telemetry;
mod upstreams;
