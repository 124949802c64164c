//! Calls: resolving the tenant, assembling the caller's context, the
//! mid-call tools and the fallback cascade. Knows nothing of which voice
//! platform asked.

pub mod context;
pub mod services;
pub mod tenants;

pub use context::{CallerContext, ContextAssembler};
pub use services::ServiceCatalog;
pub use tenants::TenantDirectory;
