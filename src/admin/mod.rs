//! Operators' surfaces: the server-rendered admin pages under `/admin`
//! (login, summary bar, parked events, …) and the token-protected JSON API
//! under `/admin/api`. The admin reads the store and the replica's numbers
//! and steers the cache and the parked events; it never touches the
//! webhooks' path.

pub mod alerts;
pub mod api;
mod audit;
mod auth;
mod console;
pub mod pages;
pub mod password;
mod session;
mod settings;

pub use auth::AdminToken;
pub use console::Console;
pub use session::LoginLimiter;
pub use settings::AdminSettings;
