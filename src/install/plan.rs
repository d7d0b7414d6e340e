//! The pure half of an install: what the destination is now ([`LiveFile`]) and the rendered
//! bytes in, a [`Plan`] out. No I/O, so every case is a unit test.
//!
//! It decides *whether* to install and why; staging, checking and renaming are the other
//! steps' business (`stage`, `command`, and the step types in the parent module).

use std::fmt;

use super::FileSpec;

/// The mode a new file gets when the resource names none and there is no live file to copy.
pub const DEFAULT_MODE: u32 = 0o644;

/// What the destination is now: the planner's view of the disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveFile {
    /// Its content.
    pub bytes: Vec<u8>,
    /// Its owner.
    pub uid: u32,
    /// Its group.
    pub gid: u32,
    /// Its permission bits (`st_mode & 0o7777`).
    pub mode: u32,
}

/// One way the live file differs from what should be installed; logged as the reason for an
/// install.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// There is no live file.
    Missing,
    /// The content differs.
    Content,
    /// The permission bits differ.
    Mode {
        /// The live mode.
        from: u32,
        /// The mode to install.
        to: u32,
    },
    /// The owner differs (only when the owner is managed).
    Uid {
        /// The live owner.
        from: u32,
        /// The owner to install.
        to: u32,
    },
    /// The group differs (only when the group is managed).
    Gid {
        /// The live group.
        from: u32,
        /// The group to install.
        to: u32,
    },
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Missing => f.write_str("file is missing"),
            Self::Content => f.write_str("content differs"),
            Self::Mode { from, to } => write!(f, "mode {from:04o} -> {to:04o}"),
            Self::Uid { from, to } => write!(f, "uid {from} -> {to}"),
            Self::Gid { from, to } => write!(f, "gid {from} -> {to}"),
        }
    }
}

/// Changes joined for one log field: `content differs, mode 0644 -> 0600`.
pub(super) struct Reasons<'a>(pub(super) &'a [Change]);

impl fmt::Display for Reasons<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, change) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{change}")?;
        }
        Ok(())
    }
}

/// What to do with a rendered file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// The live file already is the rendered file, with the right owner and mode: write
    /// nothing, run nothing.
    NoChange,
    /// Stage, check, rename, reload.
    Install {
        /// Why (never empty).
        reasons: Vec<Change>,
    },
}

/// The mode to install: the resource's, else the live file's, else [`DEFAULT_MODE`].
pub fn target_mode(live: Option<&LiveFile>, spec: &FileSpec) -> u32 {
    spec.mode.or(live.map(|l| l.mode)).unwrap_or(DEFAULT_MODE) & 0o7777
}

/// Decides whether `desired` must be installed over `live`. Pure, so every case is a unit test.
///
/// As in confd, "changed" means missing, or a different content, mode, uid or gid; a mode
/// or owner drift alone is enough. Unmanaged owner fields are never compared.
pub fn plan(live: Option<&LiveFile>, desired: &[u8], spec: &FileSpec) -> Plan {
    let Some(live) = live else {
        return Plan::Install {
            reasons: vec![Change::Missing],
        };
    };
    let mut reasons = Vec::new();
    if live.bytes != desired {
        reasons.push(Change::Content);
    }
    let mode = target_mode(Some(live), spec);
    if live.mode != mode {
        reasons.push(Change::Mode {
            from: live.mode,
            to: mode,
        });
    }
    if let Some(uid) = spec.uid.filter(|uid| *uid != live.uid) {
        reasons.push(Change::Uid {
            from: live.uid,
            to: uid,
        });
    }
    if let Some(gid) = spec.gid.filter(|gid| *gid != live.gid) {
        reasons.push(Change::Gid {
            from: live.gid,
            to: gid,
        });
    }
    if reasons.is_empty() {
        Plan::NoChange
    } else {
        Plan::Install { reasons }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn spec(dest: &Path) -> FileSpec {
        FileSpec {
            dest: dest.to_owned(),
            uid: None,
            gid: None,
            mode: None,
        }
    }

    fn live(bytes: &[u8], mode: u32) -> LiveFile {
        LiveFile {
            bytes: bytes.to_vec(),
            uid: 0,
            gid: 0,
            mode,
        }
    }

    #[test]
    fn plan_missing_file() {
        let s = spec(Path::new("/x"));
        assert_eq!(
            plan(None, b"a", &s),
            Plan::Install {
                reasons: vec![Change::Missing]
            }
        );
    }

    #[test]
    fn plan_same_file_is_no_change() {
        let s = spec(Path::new("/x"));
        assert_eq!(plan(Some(&live(b"a\n", 0o600)), b"a\n", &s), Plan::NoChange);
        let s = FileSpec {
            mode: Some(0o600),
            uid: Some(0),
            gid: Some(0),
            ..s
        };
        assert_eq!(plan(Some(&live(b"a\n", 0o600)), b"a\n", &s), Plan::NoChange);
    }

    #[test]
    fn plan_content_differs() {
        let s = spec(Path::new("/x"));
        assert_eq!(
            plan(Some(&live(b"a", 0o644)), b"b", &s),
            Plan::Install {
                reasons: vec![Change::Content]
            }
        );
    }

    #[test]
    fn plan_mode_differs() {
        let s = FileSpec {
            mode: Some(0o600),
            ..spec(Path::new("/x"))
        };
        assert_eq!(
            plan(Some(&live(b"a", 0o644)), b"a", &s),
            Plan::Install {
                reasons: vec![Change::Mode {
                    from: 0o644,
                    to: 0o600
                }]
            }
        );
    }

    #[test]
    fn plan_owner_differs_when_managed() {
        let s = FileSpec {
            uid: Some(65534),
            gid: Some(65534),
            ..spec(Path::new("/x"))
        };
        assert_eq!(
            plan(Some(&live(b"a", 0o644)), b"b", &s),
            Plan::Install {
                reasons: vec![
                    Change::Content,
                    Change::Uid { from: 0, to: 65534 },
                    Change::Gid { from: 0, to: 65534 }
                ]
            }
        );
    }

    #[test]
    fn plan_ignores_owner_when_not_managed() {
        let s = spec(Path::new("/x"));
        let l = LiveFile {
            uid: 1000,
            gid: 1000,
            ..live(b"a", 0o644)
        };
        assert_eq!(plan(Some(&l), b"a", &s), Plan::NoChange);
    }

    #[test]
    fn target_mode_defaults() {
        let s = spec(Path::new("/x"));
        assert_eq!(target_mode(None, &s), 0o644);
        assert_eq!(target_mode(Some(&live(b"", 0o640)), &s), 0o640);
        let s = FileSpec {
            mode: Some(0o600),
            ..s
        };
        assert_eq!(target_mode(Some(&live(b"", 0o640)), &s), 0o600);
    }

    #[test]
    fn changes_read_well_in_logs() {
        let r = [
            Change::Content,
            Change::Mode {
                from: 0o644,
                to: 0o600,
            },
            Change::Uid { from: 0, to: 1 },
        ];
        assert_eq!(
            Reasons(&r).to_string(),
            "content differs, mode 0644 -> 0600, uid 0 -> 1"
        );
    }
}
