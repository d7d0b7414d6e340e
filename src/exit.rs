//! Process exit codes, following sysexits where one fits, so scripts and systemd can tell a
//! failed resource from a broken configuration.

/// Everything succeeded.
pub const SUCCESS: u8 = 0;
/// At least one resource failed (render, check, install or reload), or etcd was unreachable.
pub const FAILED: u8 = 1;
/// The command line was wrong (clap exits with this itself).
pub const USAGE: u8 = 2;
/// The configuration is invalid (`EX_CONFIG`).
pub const CONFIG: u8 = 78;
