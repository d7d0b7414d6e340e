//! Installing a rendered file safely: compare with the live file, stage beside it, check,
//! rename over it, reload.
//!
//! The promise: a destination is always either the complete old or the complete new file, a
//! failed check leaves it untouched, and an unchanged render writes nothing and runs nothing.
//!
//! This module owns the pure planner ([`plan`]: live state + rendered bytes → [`Plan`]) and
//! the [`install`] pipeline that carries a plan out. The file-system steps live in `stage`,
//! the hook commands in [`command`]. It does not render templates, parse resource files or
//! decide when to retry a failed reload: those belong to the template module and the
//! per-resource reconciler.

pub mod command;
mod stage;

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use command::{CommandError, CommandOutput, ShellCommand};

/// Where a rendered file goes and who owns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSpec {
    /// The destination path.
    pub dest: PathBuf,
    /// Owner to set and compare; `None` leaves ownership unmanaged (the file belongs to
    /// whoever reconfd runs as and the live owner is never compared).
    pub uid: Option<u32>,
    /// Group to set and compare; `None` leaves the group unmanaged, as for `uid`.
    pub gid: Option<u32>,
    /// Permission bits; `None` keeps the live file's mode, or 0644 for a new file (as confd
    /// does).
    pub mode: Option<u32>,
}

/// The mode a new file gets when the resource names none and there is no live file to copy.
pub const DEFAULT_MODE: u32 = 0o644;

/// A resource's commands and how long each may run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hooks {
    /// Run against the staged file (`{{.src}}`) before it replaces the destination.
    pub check: Option<ShellCommand>,
    /// Run after the destination was replaced (`{{.src}}` and `{{.dest}}` both name it).
    pub reload: Option<ShellCommand>,
    /// After this long the check's process group is killed and the install fails.
    pub check_timeout: Duration,
    /// After this long the reload's process group is killed and the reload fails.
    pub reload_timeout: Duration,
}

impl Default for Hooks {
    /// No commands, 30 s timeouts.
    fn default() -> Self {
        Self {
            check: None,
            reload: None,
            check_timeout: Duration::from_secs(30),
            reload_timeout: Duration::from_secs(30),
        }
    }
}

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
struct Reasons<'a>(&'a [Change]);

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

/// What [`install`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The live file was already right; nothing was written and no command ran.
    Unchanged,
    /// Noop mode: the file would change and passed its check, but was not installed.
    WouldInstall {
        /// Why it would be installed.
        changes: Vec<Change>,
        /// Unified diff of live vs rendered content (empty when only owner or mode differ).
        diff: String,
    },
    /// The file would change but the reload budget is spent: nothing was installed, and
    /// the caller should try again (with the then latest render) at `until`.
    Deferred {
        /// When a reload is permitted again.
        until: std::time::Instant,
    },
    /// The file was already right, but a reload owed from an earlier failed attempt ran.
    Reloaded,
    /// The new file is in place (and the reload, if any, succeeded).
    Installed {
        /// Why it was installed.
        changes: Vec<Change>,
        /// Whether a `reload_cmd` ran.
        reloaded: bool,
    },
}

/// Why an install failed. Every variant names the file or the command; after any of them no
/// staged file is left behind.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    /// The destination's directory is missing (it is never created for you).
    #[error("{dest}: directory {dir} does not exist")]
    NoDirectory {
        /// The destination.
        dest: PathBuf,
        /// Its missing directory.
        dir: PathBuf,
    },
    /// The live file exists but could not be read.
    #[error("{path}: cannot read the live file: {source}")]
    ReadLive {
        /// The destination.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Creating, writing, chown/chmod or syncing the staged file failed; the live file is
    /// untouched.
    #[error("cannot {step} {path}: {source}")]
    Stage {
        /// The staged file (or, if it could not be created, the directory).
        path: PathBuf,
        /// What was being done, e.g. "set the owner of".
        step: &'static str,
        /// The I/O error.
        source: std::io::Error,
    },
    /// `check_cmd` failed or timed out; the live file is untouched.
    #[error("check_cmd {error}")]
    Check {
        /// The destination that was not replaced.
        dest: PathBuf,
        /// How the command failed, with its output.
        error: CommandError,
    },
    /// The staged file could not be renamed over the destination; the live file is untouched.
    #[error("cannot rename {staged} to {dest}: {source}")]
    Rename {
        /// The staged file (now removed).
        staged: PathBuf,
        /// The destination.
        dest: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// `reload_cmd` failed or timed out. The new file is installed; whether to retry the
    /// reload is the caller's decision (a later render will see no change).
    #[error("{dest} was installed, but reload_cmd {error}")]
    Reload {
        /// The destination, which already holds the new file.
        dest: PathBuf,
        /// How the command failed, with its output.
        error: CommandError,
    },
    /// The runtime shut down before a file-system step could run; nothing was renamed.
    #[error("{dest}: install interrupted by runtime shutdown")]
    Interrupted {
        /// The destination.
        dest: PathBuf,
    },
}

/// The live file and the staged replacement, when the plan is to install.
struct Prepared {
    live: Option<LiveFile>,
    changes: Vec<Change>,
    staged: stage::Staged,
}

/// Installs `rendered` at `spec.dest` for the resource `name`; see the module docs for the
/// guarantees.
///
/// Steps: sweep this destination's stale staged files; read the live file and [`plan`]; if
/// nothing changes, return [`Outcome::Unchanged`] without writing or running anything.
/// Otherwise stage the file beside the destination (owner, mode, fsync), run `check_cmd` on
/// it, then either (noop) remove it and return a diff, or rename it over the destination,
/// fsync the directory and run `reload_cmd`.
pub async fn install(
    name: &str,
    spec: &FileSpec,
    hooks: &Hooks,
    rendered: &[u8],
    noop: bool,
) -> Result<Outcome, InstallError> {
    let mut options = Options {
        noop,
        ..Options::default()
    };
    install_with(name, spec, hooks, rendered, &mut options).await
}

/// What the daemon adds to a plain install: a reload budget and a reload owed from before.
#[derive(Default)]
pub struct Options<'a> {
    /// Stage and check only; never rename or reload.
    pub noop: bool,
    /// Install without running `check_cmd` or `reload_cmd` (confd's `-sync-only`): the
    /// files are kept in line while the services are left alone, e.g. when provisioning an
    /// image. A reload owed from before is not run either, and no reload budget is spent.
    pub sync_only: bool,
    /// A previous install succeeded but its reload failed: run `reload_cmd` even when the
    /// file is already right.
    pub reload_owed: bool,
    /// Asked once the file is known to change: `Ok` spends one reload from the budget,
    /// `Err(t)` defers the install to `t` ([`Outcome::Deferred`]).
    pub permit: Option<&'a mut (dyn FnMut() -> Result<(), std::time::Instant> + Send)>,
}

/// [`install`] with the daemon's [`Options`].
pub async fn install_with(
    name: &str,
    spec: &FileSpec,
    hooks: &Hooks,
    rendered: &[u8],
    options: &mut Options<'_>,
) -> Result<Outcome, InstallError> {
    let noop = options.noop;
    let sync_only = options.sync_only;
    let dest = spec.dest.as_path();
    let prepared = blocking(dest, {
        let spec = spec.clone();
        let rendered = rendered.to_vec();
        move || prepare(&spec, &rendered)
    })
    .await?;
    let Some(Prepared {
        live,
        changes,
        staged,
    }) = prepared
    else {
        tracing::debug!("in sync");
        if let (true, false, false, Some(reload)) =
            (options.reload_owed, noop, sync_only, &hooks.reload)
        {
            command::run_logged(name, "reload_cmd", reload, dest, dest, hooks.reload_timeout)
                .await
                .map_err(|error| InstallError::Reload {
                    dest: dest.to_owned(),
                    error,
                })?;
            return Ok(Outcome::Reloaded);
        }
        return Ok(Outcome::Unchanged);
    };

    if let Some(check) = hooks.check.as_ref().filter(|_| !sync_only) {
        let result = command::run_logged(
            name,
            "check_cmd",
            check,
            staged.path(),
            dest,
            hooks.check_timeout,
        )
        .await;
        if let Err(error) = result {
            drop(staged);
            return Err(InstallError::Check {
                dest: dest.to_owned(),
                error,
            });
        }
    }

    // Asked only for a file that changes and passed its check, so a render the check
    // rejects does not spend a reload.
    if let (false, false, Some(permit)) = (noop, sync_only, options.permit.as_mut()) {
        if let Err(until) = permit() {
            drop(staged);
            tracing::info!("reload limit reached; install deferred");
            return Ok(Outcome::Deferred { until });
        }
    }

    if noop {
        drop(staged);
        let old = live.as_ref().map_or(&[][..], |l| l.bytes.as_slice());
        let diff = unified_diff(dest, old, rendered);
        tracing::info!(reasons = %Reasons(&changes), "noop: would install");
        return Ok(Outcome::WouldInstall { changes, diff });
    }

    blocking(dest, {
        let dest = dest.to_owned();
        move || stage::commit(staged, &dest)
    })
    .await?;
    tracing::info!(
        message_id = crate::logging::INSTALLED,
        reasons = %Reasons(&changes),
        "installed"
    );

    let reloaded = match hooks.reload.as_ref().filter(|_| !sync_only) {
        Some(reload) => {
            command::run_logged(name, "reload_cmd", reload, dest, dest, hooks.reload_timeout)
                .await
                .map_err(|error| InstallError::Reload {
                    dest: dest.to_owned(),
                    error,
                })?;
            true
        }
        None => false,
    };
    Ok(Outcome::Installed { changes, reloaded })
}

/// The blocking first half of an install: directory check, stale sweep, read, plan, stage.
fn prepare(spec: &FileSpec, rendered: &[u8]) -> Result<Option<Prepared>, InstallError> {
    stage::check_dir(&spec.dest)?;
    stage::remove_stale(&spec.dest);
    let live = stage::read_live(&spec.dest)?;
    let changes = match plan(live.as_ref(), rendered, spec) {
        Plan::NoChange => return Ok(None),
        Plan::Install { reasons } => reasons,
    };
    let mode = target_mode(live.as_ref(), spec);
    let staged = stage::stage(&spec.dest, rendered, mode, spec.uid, spec.gid)?;
    Ok(Some(Prepared {
        live,
        changes,
        staged,
    }))
}

/// Runs blocking file-system work off the async threads (fsync can take a while).
async fn blocking<T: Send + 'static>(
    dest: &Path,
    work: impl FnOnce() -> Result<T, InstallError> + Send + 'static,
) -> Result<T, InstallError> {
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => result,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(_) => Err(InstallError::Interrupted {
            dest: dest.to_owned(),
        }),
    }
}

/// A unified diff of `old` → `new` for people (`--noop`): `--- dest` / `+++ dest (rendered)`
/// headers, 3 lines of context. Non-UTF-8 content is decoded lossily; empty when the
/// contents are equal.
pub fn unified_diff(dest: &Path, old: &[u8], new: &[u8]) -> String {
    let old = String::from_utf8_lossy(old);
    let new = String::from_utf8_lossy(new);
    let name = dest.display().to_string();
    similar::TextDiff::from_lines(old.as_ref(), new.as_ref())
        .unified_diff()
        .context_radius(3)
        .header(&name, &format!("{name} (rendered)"))
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    use std::time::Instant;

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

    fn hooks(check: Option<&str>, reload: Option<&str>) -> Hooks {
        Hooks {
            check: check.map(ShellCommand::from),
            reload: reload.map(ShellCommand::from),
            ..Hooks::default()
        }
    }

    /// Names in `dir` other than `keep`: staged leftovers and the like.
    fn others(dir: &Path, keep: &[&str]) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| !keep.contains(&n.as_str()))
            .collect();
        names.sort();
        names
    }

    // --- planner ---

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

    #[test]
    fn diff_has_headers_and_context() {
        let old = b"1\n2\n3\n4\n5\n6\n7\n8\n9\n";
        let new = b"1\n2\n3\n4\nfive\n6\n7\n8\n9\n";
        let diff = unified_diff(Path::new("/etc/a.conf"), old, new);
        assert_eq!(
            diff,
            "--- /etc/a.conf\n+++ /etc/a.conf (rendered)\n@@ -2,7 +2,7 @@\n 2\n 3\n 4\n-5\n+five\n 6\n 7\n 8\n"
        );
        assert_eq!(unified_diff(Path::new("/a"), b"same\n", b"same\n"), "");
        assert!(unified_diff(Path::new("/a"), b"\xff\xfe\n", b"ok\n").contains("+ok"));
    }

    // --- install ---

    #[tokio::test]
    async fn installs_a_fresh_file() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("app.conf");
        let out = install("app", &spec(&dest), &hooks(None, None), b"hello\n", false)
            .await
            .unwrap();
        assert_eq!(
            out,
            Outcome::Installed {
                changes: vec![Change::Missing],
                reloaded: false
            }
        );
        assert_eq!(fs::read(&dest).unwrap(), b"hello\n");
        assert_eq!(
            fs::metadata(&dest).unwrap().permissions().mode() & 0o7777,
            0o644
        );
        assert!(others(dir.path(), &["app.conf"]).is_empty());
    }

    #[tokio::test]
    async fn replaces_content_and_reloads() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("app.conf");
        fs::write(&dest, b"old\n").unwrap();
        let marker = dir.path().join("reloaded");
        let reload = format!("echo {{{{.src}}}} {{{{.dest}}}} > {}", marker.display());
        let out = install(
            "app",
            &spec(&dest),
            &hooks(None, Some(&reload)),
            b"new\n",
            false,
        )
        .await
        .unwrap();
        assert_eq!(
            out,
            Outcome::Installed {
                changes: vec![Change::Content],
                reloaded: true
            }
        );
        assert_eq!(fs::read(&dest).unwrap(), b"new\n");
        let d = dest.display();
        assert_eq!(fs::read_to_string(&marker).unwrap(), format!("{d} {d}\n"));
    }

    #[tokio::test]
    async fn unchanged_file_is_not_written_and_nothing_runs() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("app.conf");
        fs::write(&dest, b"same\n").unwrap();
        let before = fs::metadata(&dest).unwrap();
        std::thread::sleep(Duration::from_millis(20));
        let marker = dir.path().join("ran");
        let touch = format!("touch {}", marker.display());
        let h = hooks(Some(&touch), Some(&touch));
        let out = install("app", &spec(&dest), &h, b"same\n", false)
            .await
            .unwrap();
        assert_eq!(out, Outcome::Unchanged);
        let after = fs::metadata(&dest).unwrap();
        assert_eq!(
            (before.ino(), before.mtime(), before.mtime_nsec()),
            (after.ino(), after.mtime(), after.mtime_nsec())
        );
        assert!(!marker.exists());
        assert!(others(dir.path(), &["app.conf"]).is_empty());
    }

    #[tokio::test]
    async fn failing_check_leaves_dest_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("app.conf");
        fs::write(&dest, b"old\n").unwrap();
        let marker = dir.path().join("reloaded");
        let h = hooks(
            Some("echo 'syntax error' >&2; false"),
            Some(&format!("touch {}", marker.display())),
        );
        let err = install("app", &spec(&dest), &h, b"new\n", false)
            .await
            .unwrap_err();
        let InstallError::Check {
            error: CommandError::Failed { output, .. },
            ..
        } = &err
        else {
            panic!("{err:?}")
        };
        assert_eq!(output.text, "syntax error\n");
        assert!(
            err.to_string().starts_with(
                "check_cmd \"echo 'syntax error' >&2; false\" failed (exit status 1): syntax error"
            ),
            "{err}"
        );
        assert_eq!(fs::read(&dest).unwrap(), b"old\n");
        assert!(!marker.exists());
        assert!(others(dir.path(), &["app.conf"]).is_empty());
    }

    #[tokio::test]
    async fn check_sees_the_staged_file_and_the_dest() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("app.conf");
        fs::write(&dest, b"old\n").unwrap();
        let seen = dir.path().join("seen");
        let check = format!(
            "grep -q expected {{{{.src}}}} && grep -q old {{{{ .dest }}}} && echo {{{{.src}}}} > {}",
            seen.display()
        );
        let out = install(
            "app",
            &spec(&dest),
            &hooks(Some(&check), None),
            b"expected\n",
            false,
        )
        .await
        .unwrap();
        assert!(matches!(out, Outcome::Installed { .. }));
        let staged = fs::read_to_string(&seen).unwrap();
        let staged = Path::new(staged.trim_end());
        assert_eq!(staged.parent(), Some(dir.path()));
        assert!(staged
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with(".app.conf.reconfd-"));
        assert!(!staged.exists(), "the staged file became the destination");
        assert_eq!(fs::read(&dest).unwrap(), b"expected\n");
    }

    #[tokio::test]
    async fn check_timeout_kills_the_group_and_keeps_dest() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("app.conf");
        fs::write(&dest, b"old\n").unwrap();
        let pids = dir.path().join("pids");
        let check = format!(
            "echo $$ > {p}; sleep 10 & echo $! >> {p}; wait",
            p = pids.display()
        );
        let h = Hooks {
            check_timeout: Duration::from_millis(200),
            ..hooks(Some(&check), None)
        };
        let t0 = Instant::now();
        let err = install("app", &spec(&dest), &h, b"new\n", false)
            .await
            .unwrap_err();
        assert!(
            t0.elapsed() < Duration::from_secs(1),
            "took {:?}",
            t0.elapsed()
        );
        assert!(
            matches!(
                err,
                InstallError::Check {
                    error: CommandError::TimedOut { .. },
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(err.to_string().contains("timed out after 200ms"), "{err}");
        for pid in fs::read_to_string(&pids).unwrap().lines() {
            assert!(
                command::tests::gone_soon(pid.parse().unwrap()),
                "process {pid} survived"
            );
        }
        assert_eq!(fs::read(&dest).unwrap(), b"old\n");
        assert_eq!(
            others(dir.path(), &["app.conf", "pids"]),
            Vec::<String>::new()
        );
    }

    #[tokio::test]
    async fn noop_shows_a_diff_and_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("app.conf");
        fs::write(&dest, b"a\nb\n").unwrap();
        let marker = dir.path().join("reloaded");
        let h = hooks(Some("true"), Some(&format!("touch {}", marker.display())));
        let out = install("app", &spec(&dest), &h, b"a\nc\n", true)
            .await
            .unwrap();
        let d = dest.display();
        assert_eq!(
            out,
            Outcome::WouldInstall {
                changes: vec![Change::Content],
                diff: format!("--- {d}\n+++ {d} (rendered)\n@@ -1,2 +1,2 @@\n a\n-b\n+c\n"),
            }
        );
        assert_eq!(fs::read(&dest).unwrap(), b"a\nb\n");
        assert!(!marker.exists());
        assert!(others(dir.path(), &["app.conf"]).is_empty());
    }

    #[tokio::test]
    async fn noop_still_runs_the_check() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("app.conf");
        let err = install(
            "app",
            &spec(&dest),
            &hooks(Some("exit 2"), None),
            b"x\n",
            true,
        )
        .await
        .unwrap_err();
        assert!(matches!(err, InstallError::Check { .. }));
        assert!(others(dir.path(), &[]).is_empty());
    }

    /// confd's `-sync-only`: the file is installed, but neither command runs, an owed reload
    /// stays owed and the reload budget is not asked.
    #[tokio::test]
    async fn sync_only_installs_without_running_commands() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("app.conf");
        fs::write(&dest, b"old\n").unwrap();
        let (checked, reloaded) = (dir.path().join("checked"), dir.path().join("reloaded"));
        let h = hooks(
            Some(&format!("touch {}; exit 1", checked.display())),
            Some(&format!("touch {}", reloaded.display())),
        );
        let mut asked = 0;
        let mut permit = || {
            asked += 1;
            Ok(())
        };
        let mut options = Options {
            sync_only: true,
            reload_owed: true,
            permit: Some(&mut permit),
            ..Options::default()
        };
        let out = install_with("app", &spec(&dest), &h, b"new\n", &mut options)
            .await
            .unwrap();
        assert_eq!(
            out,
            Outcome::Installed {
                changes: vec![Change::Content],
                reloaded: false
            }
        );
        assert_eq!(fs::read(&dest).unwrap(), b"new\n");
        // In sync now: the owed reload is not run either.
        let out = install_with("app", &spec(&dest), &h, b"new\n", &mut options)
            .await
            .unwrap();
        assert_eq!(out, Outcome::Unchanged);
        assert_eq!(asked, 0);
        assert!(!checked.exists(), "check_cmd ran under sync_only");
        assert!(!reloaded.exists(), "reload_cmd ran under sync_only");
        assert!(others(dir.path(), &["app.conf"]).is_empty());
    }

    #[tokio::test]
    async fn mode_is_applied_and_mode_drift_reinstalls() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("secret.conf");
        fs::write(&dest, b"s\n").unwrap();
        fs::set_permissions(&dest, fs::Permissions::from_mode(0o644)).unwrap();
        let s = FileSpec {
            mode: Some(0o600),
            ..spec(&dest)
        };
        let out = install("secret", &s, &hooks(None, None), b"s\n", false)
            .await
            .unwrap();
        assert_eq!(
            out,
            Outcome::Installed {
                changes: vec![Change::Mode {
                    from: 0o644,
                    to: 0o600
                }],
                reloaded: false
            }
        );
        assert_eq!(
            fs::metadata(&dest).unwrap().permissions().mode() & 0o7777,
            0o600
        );
        assert_eq!(
            install("secret", &s, &hooks(None, None), b"s\n", false)
                .await
                .unwrap(),
            Outcome::Unchanged
        );
    }

    #[tokio::test]
    async fn live_mode_is_kept_when_unset() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("app.conf");
        fs::write(&dest, b"old\n").unwrap();
        fs::set_permissions(&dest, fs::Permissions::from_mode(0o640)).unwrap();
        install("app", &spec(&dest), &hooks(None, None), b"new\n", false)
            .await
            .unwrap();
        assert_eq!(
            fs::metadata(&dest).unwrap().permissions().mode() & 0o7777,
            0o640
        );
    }

    #[tokio::test]
    async fn owner_is_applied_when_managed() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: needs root to chown");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("app.conf");
        fs::write(&dest, b"x\n").unwrap();
        let s = FileSpec {
            uid: Some(65534),
            gid: Some(65534),
            ..spec(&dest)
        };
        let out = install("app", &s, &hooks(None, None), b"x\n", false)
            .await
            .unwrap();
        assert_eq!(
            out,
            Outcome::Installed {
                changes: vec![
                    Change::Uid { from: 0, to: 65534 },
                    Change::Gid { from: 0, to: 65534 }
                ],
                reloaded: false
            }
        );
        let meta = fs::metadata(&dest).unwrap();
        assert_eq!((meta.uid(), meta.gid()), (65534, 65534));
        assert_eq!(
            install("app", &s, &hooks(None, None), b"x\n", false)
                .await
                .unwrap(),
            Outcome::Unchanged
        );
        // Unmanaged ownership: the foreign owner is left alone.
        assert_eq!(
            install("app", &spec(&dest), &hooks(None, None), b"x\n", false)
                .await
                .unwrap(),
            Outcome::Unchanged
        );
    }

    #[tokio::test]
    async fn stale_staged_files_of_this_dest_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("app.conf");
        fs::write(&dest, b"same\n").unwrap();
        fs::write(dir.path().join(".app.conf.reconfd-Ab12Cd34Ef"), b"half").unwrap();
        fs::write(
            dir.path().join(".other.conf.reconfd-Ab12Cd34Ef"),
            b"not ours",
        )
        .unwrap();
        fs::write(dir.path().join(".app.conf123456"), b"confd's").unwrap();
        let out = install("app", &spec(&dest), &hooks(None, None), b"same\n", false)
            .await
            .unwrap();
        assert_eq!(out, Outcome::Unchanged);
        assert_eq!(
            others(dir.path(), &["app.conf"]),
            [".app.conf123456", ".other.conf.reconfd-Ab12Cd34Ef"]
        );
    }

    #[tokio::test]
    async fn failed_reload_keeps_the_new_file() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("app.conf");
        fs::write(&dest, b"old\n").unwrap();
        let err = install(
            "app",
            &spec(&dest),
            &hooks(None, Some("echo nope; exit 1")),
            b"new\n",
            false,
        )
        .await
        .unwrap_err();
        assert!(
            matches!(
                err,
                InstallError::Reload {
                    error: CommandError::Failed { .. },
                    ..
                }
            ),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            format!("{} was installed, but reload_cmd \"echo nope; exit 1\" failed (exit status 1): nope", dest.display())
        );
        assert_eq!(fs::read(&dest).unwrap(), b"new\n");
        assert!(others(dir.path(), &["app.conf"]).is_empty());
    }

    #[tokio::test]
    async fn missing_directory_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope");
        let dest = missing.join("app.conf");
        let err = install("app", &spec(&dest), &hooks(None, None), b"x\n", false)
            .await
            .unwrap_err();
        assert!(matches!(&err, InstallError::NoDirectory { dir, .. } if *dir == missing));
        assert!(
            err.to_string()
                .contains(&format!("directory {} does not exist", missing.display())),
            "{err}"
        );
        assert!(!missing.exists());
    }

    #[tokio::test]
    async fn unreadable_dest_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("app.conf");
        fs::create_dir(&dest).unwrap();
        let err = install("app", &spec(&dest), &hooks(None, None), b"x\n", false)
            .await
            .unwrap_err();
        assert!(matches!(err, InstallError::ReadLive { .. }), "{err:?}");
        assert_eq!(others(dir.path(), &["app.conf"]), Vec::<String>::new());
    }

    #[tokio::test]
    async fn failed_rename_removes_the_staged_file() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("app.conf");
        fs::write(&dest, b"old\n").unwrap();
        // The check swaps dest for a non-empty directory, which rename cannot replace.
        let check = "rm {{.dest}} && mkdir {{.dest}} && touch {{.dest}}/inner";
        let err = install(
            "app",
            &spec(&dest),
            &hooks(Some(check), None),
            b"x\n",
            false,
        )
        .await
        .unwrap_err();
        assert!(
            matches!(&err, InstallError::Rename { dest: d, .. } if *d == dest),
            "{err:?}"
        );
        assert!(err.to_string().starts_with("cannot rename "), "{err}");
        assert_eq!(others(dir.path(), &["app.conf"]), Vec::<String>::new());
    }
}
