//! The one integration-test binary: every test spawns the real application
//! (or the real binary) against a fresh database and the real Redis.

mod helpers;

mod admin_alerts;
mod admin_api;
mod admin_call_detail;
mod admin_call_log;
mod admin_pages;
mod admin_tenant_guards;
mod admin_tenants;
mod admin_timings;
mod admin_upstreams;
mod batches;
mod bots;
mod cache;
mod cache_redis;
mod chat;
mod durable_answers;
mod edge;
mod elevenlabs;
mod elevenlabs_edge;
mod events;
mod health;
mod hostile_upstreams;
mod journal_faults;
mod layers;
mod loadgen;
mod observability;
mod outbound;
mod platforms;
mod process;
mod properties;
mod redis_cluster;
mod replicas;
mod resilience;
mod retell;
mod rolling_restart;
mod shutdown;
mod spill_journal;
mod store;
mod telemetry;
mod tls;
mod tools;
mod upstreams;
mod vapi;
mod webhooks;
