//! Reading settings from environment variables: one reader every subsystem's
//! settings type uses, so that every bad value stops the start with one line
//! naming the variable, and an operator never has to guess which of twenty
//! variables was wrong.

use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

use secrecy::SecretString;

/// A setting that could not be used; the message names the variable.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid {var}: {reason}")]
pub struct SettingsError {
    pub var: String,
    pub reason: String,
}

impl SettingsError {
    pub fn new(var: &str, reason: impl Into<String>) -> Self {
        SettingsError {
            var: var.into(),
            reason: reason.into(),
        }
    }
}

/// The variables settings are read from: the process environment, or a map
/// a test passes. Empty values count as unset.
pub struct Env<'a> {
    vars: &'a HashMap<String, String>,
}

impl<'a> Env<'a> {
    pub fn new(vars: &'a HashMap<String, String>) -> Self {
        Env { vars }
    }

    /// The trimmed value, `None` when unset or empty.
    pub fn get(&self, name: &str) -> Option<String> {
        self.vars
            .get(name)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    }

    pub fn secret(&self, name: &str) -> Option<SecretString> {
        self.get(name).map(SecretString::from)
    }

    pub fn get_or(&self, name: &str, default: &str) -> String {
        self.get(name).unwrap_or_else(|| default.to_owned())
    }

    /// Parses the value with `parse`; the error names the variable and value.
    pub fn parse_with<T>(
        &self,
        name: &str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<Option<T>, SettingsError> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => parse(&v)
                .map(Some)
                .map_err(|reason| SettingsError::new(name, format!("`{v}`: {reason}"))),
        }
    }

    /// A value of a `FromStr` type, or `default` when unset.
    pub fn parse_or<T: FromStr>(&self, name: &str, default: T) -> Result<T, SettingsError>
    where
        T::Err: std::fmt::Display,
    {
        Ok(self
            .parse_with(name, |v| v.parse::<T>().map_err(|e| e.to_string()))?
            .unwrap_or(default))
    }

    /// A whole number of at least `min`, or `default` when unset.
    pub fn count_or(&self, name: &str, default: u32, min: u32) -> Result<u32, SettingsError> {
        Ok(self
            .parse_with(name, |v| match v.parse::<u32>() {
                Ok(n) if n >= min => Ok(n),
                _ => Err(format!("expected a whole number of at least {min}")),
            })?
            .unwrap_or(default))
    }

    /// A duration given in whole milliseconds, or `default_ms` when unset.
    pub fn millis_or(&self, name: &str, default_ms: u64) -> Result<Duration, SettingsError> {
        Ok(self
            .parse_with(name, |v| {
                v.parse::<u64>()
                    .map(Duration::from_millis)
                    .map_err(|_| "expected a whole number of milliseconds".into())
            })?
            .unwrap_or(Duration::from_millis(default_ms)))
    }

    /// `on` / `off`, or `default` when unset.
    pub fn switch_or(&self, name: &str, default: bool) -> Result<bool, SettingsError> {
        Ok(self
            .parse_with(name, |v| match v {
                "on" => Ok(true),
                "off" => Ok(false),
                _ => Err("expected `on` or `off`".into()),
            })?
            .unwrap_or(default))
    }
}
