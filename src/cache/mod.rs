//! The tiered cache: L1 in process, L2 in Redis.
//!
//! This module owns every Redis connection warmline makes; no other module
//! talks to Redis.

mod redis_link;

pub use redis_link::{RedisHealth, RedisLink};
