//! Calls: resolving the tenant, assembling the caller's context, the
//! mid-call tools and the fallback cascade. Knows nothing of which voice
//! platform asked.

pub mod tenants;

pub use tenants::TenantDirectory;
