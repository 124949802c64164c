//! Operators' surfaces: the token-protected JSON API (and, later, the
//! server-rendered admin pages).

pub mod api;
mod auth;

pub use auth::{AdminToken, constant_time_eq};
