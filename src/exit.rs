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

/// The code for an error that stops a command before any resource ran: [`CONFIG`] when the
/// operator's configuration is at fault (an unusable TLS or password file, say), [`FAILED`]
/// otherwise (etcd unreachable).
pub fn for_error(config_fault: bool) -> u8 {
    if config_fault {
        CONFIG
    } else {
        FAILED
    }
}
