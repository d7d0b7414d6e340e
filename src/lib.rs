//! reconfd keeps configuration files on a host in line with what lives in etcd.
//!
//! # Layout
//!
//! - [`config`]: the daemon config file and command-line overrides, validated into [`config::Settings`].
//! - [`resource`]: template resources from `<confdir>/conf.d/*.toml`.
//! - [`keys`]: etcd key paths: joining prefixes, which keys a watched key covers.
//! - [`store`]: the key/value view one render sees.
//! - [`template`]: Tera templates with confd's function set.
//! - [`diag`]: `file:line: message` diagnostics.
#![deny(missing_docs)]

pub mod config;
pub mod diag;
pub mod keys;
pub mod resource;
pub mod store;
pub mod template;
