//! reconfd keeps configuration files in line with etcd.
#![deny(missing_docs)]

pub mod install;
pub mod keys;
pub mod store;
pub mod template;
