//! reconfd keeps configuration files on a host in line with what lives in etcd.
//!
//! # Layout
//!
//! - [`cli`]: command-line definitions; [`cmd`]: one module per subcommand.
//! - [`confd`]: confd's command line and confd.toml (`reconfd confd`).
//! - [`config`]: the daemon config file and overrides, validated into [`config::Settings`].
//! - [`resource`]: template resources from `<confdir>/conf.d/*.toml`.
//! - [`etcd`]: connecting and reading every watched key at one revision.
//! - [`keys`]: etcd key paths: joining prefixes, which keys a watched key covers.
//! - [`store`]: the key/value view one render sees.
//! - [`template`]: Tera templates with confd's function set.
//! - [`install`]: compare, stage, check, rename, reload: the safe install pipeline.
//! - [`migrate`]: `reconfd migrate`: a confd tree to a reconfd tree, templates to Tera where exact.
//! - [`reconciler`]: the one loader, one render + install of one resource, and `run`'s
//!   per-resource actor.
//! - [`guard`]: `min_keys` / `max_shrink`: whether a render that lost keys may be installed.
//! - [`batch`]: when to reconcile (debounce, max wait, reload limit, retries), sans I/O.
//! - [`supervisor`]: `reconfd run`'s generations, READY/STATUS/WATCHDOG, reloads.
//! - [`notify`]: systemd notifications.
//! - [`users`]: owner and group names.
//! - [`diag`], [`exit`], [`logging`]: diagnostics, exit codes, log setup.
#![deny(missing_docs)]

pub mod batch;
pub mod cli;
pub mod cmd;
pub mod confd;
pub mod config;
pub mod control;
pub mod diag;
pub mod etcd;
pub mod exit;
pub mod guard;
pub mod install;
pub mod keys;
pub mod logging;
pub mod metrics;
pub mod migrate;
pub mod notify;
pub mod reconciler;
pub mod resource;
pub mod store;
pub mod supervisor;
pub mod template;
pub mod users;
