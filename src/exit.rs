//! Process exit codes, following sysexits where one fits, so scripts and systemd can tell a
//! failed resource from an unreachable etcd, a refused login or a broken configuration.
//!
//! The one mapping from what went wrong to a code lives here ([`Failure`]); commands say what
//! happened and take the code from it. `reconfd confd` keeps confd's own codes instead.

/// Everything succeeded.
pub const SUCCESS: u8 = 0;
/// At least one resource failed (render, check, install or reload).
pub const FAILED: u8 = 1;
/// The command line was wrong (clap exits with this itself).
pub const USAGE: u8 = 2;
/// No etcd member could be reached (`EX_UNAVAILABLE`): refused, timed out, TLS handshake failed.
pub const UNAVAILABLE: u8 = 69;
/// etcd refused the login or denied reading a watched key (`EX_NOPERM`).
pub const NOPERM: u8 = 77;
/// The configuration is invalid (`EX_CONFIG`).
pub const CONFIG: u8 = 78;

/// What stopped a command or made it fail, from the most to the least specific for a person
/// acting on it: when several things failed, the command exits with the highest-ranked one
/// ([`Failure::worst`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Failure {
    /// A resource failed to render, check, install or reload.
    Resource,
    /// No etcd member answered.
    Unavailable,
    /// etcd refused the login or a read.
    NoPermission,
    /// The operator's configuration (files, TLS, password source) is at fault.
    Config,
}

impl Failure {
    /// The exit code.
    pub fn code(self) -> u8 {
        match self {
            Failure::Resource => FAILED,
            Failure::Unavailable => UNAVAILABLE,
            Failure::NoPermission => NOPERM,
            Failure::Config => CONFIG,
        }
    }

    /// The code for everything that failed: [`SUCCESS`] when nothing did, else the code of the
    /// highest-ranked failure (configuration, then permission, then etcd, then a resource).
    pub fn worst(failures: impl IntoIterator<Item = Failure>) -> u8 {
        failures.into_iter().max().map_or(SUCCESS, Failure::code)
    }
}

/// `code` as confd `-onetime` would exit: confd has no sysexits for etcd, so an unreachable etcd
/// or a refused login is 1 there, like a failed resource. Usage and configuration codes stay
/// (confd exits 1 for those too, but scripts for `reconfd confd` were told 2 and 78).
pub fn as_confd(code: u8) -> u8 {
    match code {
        UNAVAILABLE | NOPERM => FAILED,
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_worst_failure_decides() {
        assert_eq!(Failure::worst([]), SUCCESS);
        assert_eq!(Failure::worst([Failure::Resource]), FAILED);
        assert_eq!(
            Failure::worst([Failure::Resource, Failure::NoPermission]),
            NOPERM
        );
        assert_eq!(
            Failure::worst([Failure::Unavailable, Failure::Config]),
            CONFIG
        );
    }
}
