//! Who may use the admin: `WARMLINE_ADMIN_TOKEN` for the JSON API, argon2
//! password hashes for the pages, and how long a page session lasts.

use std::time::Duration;

use secrecy::SecretString;

use super::password::PasswordHash;
use crate::support::{Env, SettingsError};

#[derive(Clone, Default)]
pub struct AdminSettings {
    /// Bearer token of the admin JSON API; unset: the API is disabled.
    pub token: Option<SecretString>,
    /// `WARMLINE_ADMIN_PASSWORD_HASH`: the operators' password (an argon2
    /// PHC string from `warmline hash-password`).
    pub password: Option<PasswordHash>,
    /// `WARMLINE_ADMIN_VIEWER_PASSWORD_HASH`: a read-only login beside it.
    pub viewer_password: Option<PasswordHash>,
    /// Set at start when neither is configured but the demo runs on a
    /// loopback listener: a password printed once, valid while this process
    /// runs.
    pub one_time_password: Option<SecretString>,
    /// `WARMLINE_ADMIN_COOKIE_SECURE`: mark the session cookie `Secure` even
    /// when the request did not arrive over HTTPS (behind a TLS proxy).
    pub cookie_secure: bool,
    /// `WARMLINE_ADMIN_SESSION_IDLE_MS` (30 min) and
    /// `WARMLINE_ADMIN_SESSION_MAX_MS` (12 h).
    pub session_idle: Duration,
    pub session_max: Duration,
    /// `WARMLINE_TRACE_URL`: a trace's page, `{trace_id}` replaced (e.g.
    /// `http://localhost:16686/trace/{trace_id}` for Jaeger).
    pub trace_url: Option<String>,
    /// `WARMLINE_ALERT_*`: the thresholds of the alerts page's evaluation.
    pub alerts: super::alerts::AlertSettings,
    /// `WARMLINE_ADMIN_UPSTREAM_HOSTS`: hosts besides each adapter kind's
    /// official API that a tenant's `base_url` may name when set from the
    /// admin pages (comma-separated, e.g. `127.0.0.1` for the simulator),
    /// lower case. `warmline tenants import` is not limited.
    pub upstream_hosts: Vec<String>,
}

impl AdminSettings {
    pub fn from_env(env: &Env) -> Result<Self, SettingsError> {
        let token = env.parse_with("WARMLINE_ADMIN_TOKEN", |t| {
            if t.len() < 16 {
                Err("must be at least 16 characters".into())
            } else {
                Ok(SecretString::from(t))
            }
        });
        // The value is a secret: name the variable, never echo it.
        let token = token.map_err(|_| {
            SettingsError::new("WARMLINE_ADMIN_TOKEN", "must be at least 16 characters")
        })?;
        let hash = |name: &str| {
            env.parse_with(name, PasswordHash::parse)
                .map_err(|_| {
                    SettingsError::new(
                        name,
                        "must be an argon2 PHC string ($argon2id$…); make one with `warmline hash-password`",
                    )
                })
        };
        let trace_url = env.get("WARMLINE_TRACE_URL");
        if let Some(url) = &trace_url
            && !url.contains("{trace_id}")
        {
            return Err(SettingsError::new(
                "WARMLINE_TRACE_URL",
                "must contain `{trace_id}`, e.g. http://localhost:16686/trace/{trace_id}",
            ));
        }
        let upstream_hosts = env
            .get("WARMLINE_ADMIN_UPSTREAM_HOSTS")
            .unwrap_or_default()
            .split(',')
            .map(crate::tenants::normal_host)
            .filter(|h| !h.is_empty())
            .map(|h| {
                if h.contains(['/', ':', '@', ' ']) && h.parse::<std::net::Ipv6Addr>().is_err() {
                    Err(SettingsError::new(
                        "WARMLINE_ADMIN_UPSTREAM_HOSTS",
                        "must be host names or addresses, comma-separated (e.g. 127.0.0.1), \
                         without scheme, port or path",
                    ))
                } else {
                    Ok(h)
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(AdminSettings {
            token,
            password: hash("WARMLINE_ADMIN_PASSWORD_HASH")?,
            viewer_password: hash("WARMLINE_ADMIN_VIEWER_PASSWORD_HASH")?,
            one_time_password: None,
            cookie_secure: env.switch_or("WARMLINE_ADMIN_COOKIE_SECURE", false)?,
            session_idle: env.millis_or("WARMLINE_ADMIN_SESSION_IDLE_MS", 30 * 60 * 1000)?,
            session_max: env.millis_or("WARMLINE_ADMIN_SESSION_MAX_MS", 12 * 3600 * 1000)?,
            trace_url,
            alerts: super::alerts::AlertSettings::from_env(env)?,
            upstream_hosts,
        })
    }

    /// Whether anyone can log in to the pages.
    pub fn login_configured(&self) -> bool {
        self.password.is_some()
            || self.viewer_password.is_some()
            || self.one_time_password.is_some()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn hosts(value: &str) -> Result<Vec<String>, SettingsError> {
        let vars = HashMap::from([("WARMLINE_ADMIN_UPSTREAM_HOSTS".to_owned(), value.to_owned())]);
        AdminSettings::from_env(&Env::new(&vars)).map(|s| s.upstream_hosts)
    }

    #[test]
    fn admin_upstream_hosts_are_a_comma_separated_list_of_bare_hosts() {
        assert_eq!(
            hosts(" 127.0.0.1, Sim.Test ,,[::1]").unwrap(),
            ["127.0.0.1", "sim.test", "::1"]
        );
        assert!(hosts("").unwrap().is_empty());
        for bad in ["http://sim.test", "sim.test:8080", "sim.test/x", "a b"] {
            let e = hosts(bad).unwrap_err().to_string();
            assert!(e.contains("WARMLINE_ADMIN_UPSTREAM_HOSTS"), "{bad}: {e}");
        }
    }
}
