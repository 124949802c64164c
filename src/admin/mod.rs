//! Operators' surfaces: the token-protected JSON API (and, later, the
//! server-rendered admin pages). The admin may read the store and steer the
//! cache; it never touches the webhooks' path.

pub mod api;
mod auth;
mod settings;

pub use auth::AdminToken;
pub use settings::AdminSettings;
