//! The file-system side of an install, done the afterburn way: read the live file, write a
//! staged file beside the destination with its owner and mode, `sync_all`, `rename` it over
//! the destination and fsync the directory; and sweep staged files a killed run left behind.
//!
//! Everything here is blocking I/O (the caller runs it on a blocking thread). It decides
//! nothing: what to install and whether to is the planner's, running hooks is `command`'s.

use std::ffi::OsString;
use std::fs::{self, File, Permissions};
use std::io::{self, Read, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use tempfile::NamedTempFile;

use super::{InstallError, LiveFile};

/// What staged file names carry between the destination's name and the random part.
const STAGE_MARK: &[u8] = b".reconfd-";

/// The directory a destination lives in (`.` for a bare file name).
pub(super) fn dest_dir(dest: &Path) -> &Path {
    match dest.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

/// Staged files of `dest` are named `.<destname>.reconfd-<random>`: hidden, recognisably
/// ours, and specific to one destination so a sweep never touches another's.
pub(super) fn stage_prefix(dest: &Path) -> OsString {
    let name = dest.file_name().map(OsStrExt::as_bytes).unwrap_or_default();
    let mut prefix = Vec::with_capacity(name.len() + STAGE_MARK.len() + 1);
    prefix.push(b'.');
    prefix.extend_from_slice(name);
    prefix.extend_from_slice(STAGE_MARK);
    OsString::from_vec(prefix)
}

/// Whether `file_name` is a staged file of the destination whose prefix is `prefix`. The
/// random part is alphanumeric, so `.a.conf.reconfd-x.reconfd-123` (staged for a destination
/// called `a.conf.reconfd-x`) is not taken for one of `a.conf`'s.
fn is_staged_name(file_name: &[u8], prefix: &[u8]) -> bool {
    file_name
        .strip_prefix(prefix)
        .is_some_and(|rand| !rand.is_empty() && rand.iter().all(u8::is_ascii_alphanumeric))
}

/// Fails unless the destination's directory exists. We never create it: a missing directory
/// usually means a typo in `dest` or a package that is not installed.
pub(super) fn check_dir(dest: &Path) -> Result<(), InstallError> {
    let dir = dest_dir(dest);
    match fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => Ok(()),
        _ => Err(InstallError::NoDirectory {
            dest: dest.to_owned(),
            dir: dir.to_owned(),
        }),
    }
}

/// Removes staged files of `dest` left by an earlier run that was killed between staging and
/// renaming. Failures are logged, not returned: a leftover file is untidy, not dangerous.
pub(super) fn remove_stale(dest: &Path) -> Vec<PathBuf> {
    let dir = dest_dir(dest);
    let prefix = stage_prefix(dest);
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) => {
            tracing::warn!(dir = %dir.display(), %error, "cannot list directory for stale staged files");
            return Vec::new();
        }
    };
    let mut removed = Vec::new();
    for entry in entries.flatten() {
        if !is_staged_name(entry.file_name().as_bytes(), prefix.as_bytes()) {
            continue;
        }
        // Only plain files: something else with our name is not something we made.
        if !entry.file_type().is_ok_and(|t| t.is_file()) {
            continue;
        }
        let path = entry.path();
        match fs::remove_file(&path) {
            Ok(()) => {
                tracing::info!(dest = %dest.display(), staged = %path.display(), "removed stale staged file");
                removed.push(path);
            }
            Err(error) => {
                tracing::warn!(staged = %path.display(), %error, "cannot remove stale staged file")
            }
        }
    }
    removed
}

/// The live destination's content, owner and mode; `None` when it does not exist. Content
/// and metadata come from one open file, so they describe the same file.
pub(super) fn read_live(dest: &Path) -> Result<Option<LiveFile>, InstallError> {
    let read_error = |source| InstallError::ReadLive {
        path: dest.to_owned(),
        source,
    };
    let mut file = match File::open(dest) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(read_error(e)),
    };
    let meta = file.metadata().map_err(read_error)?;
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    file.read_to_end(&mut bytes).map_err(read_error)?;
    Ok(Some(LiveFile {
        bytes,
        uid: meta.uid(),
        gid: meta.gid(),
        mode: meta.mode() & 0o7777,
    }))
}

/// A staged file beside the destination: complete, owned, moded and on disk. Dropping it
/// removes it, so every early return leaves nothing behind.
#[derive(Debug)]
pub(super) struct StagedFile {
    file: NamedTempFile,
}

impl StagedFile {
    /// Where the staged file is (what `{{.src}}` names for `check_cmd`).
    pub(super) fn path(&self) -> &Path {
        self.file.path()
    }
}

/// Writes `bytes` to a new staged file for `dest`, sets its owner (when managed) and mode,
/// and syncs it.
pub(super) fn stage(
    dest: &Path,
    bytes: &[u8],
    mode: u32,
    uid: Option<u32>,
    gid: Option<u32>,
) -> Result<StagedFile, InstallError> {
    let dir = dest_dir(dest);
    let mut file = tempfile::Builder::new()
        .prefix(&stage_prefix(dest))
        .rand_bytes(10)
        .tempfile_in(dir)
        .map_err(|source| InstallError::Stage {
            path: dir.to_owned(),
            step: "create a staged file in",
            source,
        })?;
    let path = file.path().to_owned();
    let error = |step, source| InstallError::Stage {
        path: path.clone(),
        step,
        source,
    };
    if let Err(e) = file.as_file_mut().write_all(bytes) {
        return Err(error("write", e));
    }
    // chown before chmod: changing the owner clears set-id bits the mode may ask for.
    if uid.is_some() || gid.is_some() {
        if let Err(e) = std::os::unix::fs::fchown(file.as_file(), uid, gid) {
            return Err(error("set the owner of", e));
        }
    }
    if let Err(e) = file.as_file().set_permissions(Permissions::from_mode(mode)) {
        return Err(error("set the mode of", e));
    }
    if let Err(e) = file.as_file().sync_all() {
        return Err(error("sync", e));
    }
    Ok(StagedFile { file })
}

/// Renames the staged file over `dest` (atomic: readers see the old or the new file) and
/// fsyncs the directory so the rename survives a crash. A failed rename removes the staged
/// file. A failed directory sync is only logged: the new file is in place and the reload
/// must still run.
pub(super) fn commit(staged: StagedFile, dest: &Path) -> Result<(), InstallError> {
    let staged_path = staged.path().to_owned();
    if let Err(e) = staged.file.persist(dest) {
        // Dropping the returned file removes the staged file.
        drop(e.file);
        return Err(InstallError::Rename {
            staged: staged_path,
            dest: dest.to_owned(),
            source: e.error,
        });
    }
    let dir = dest_dir(dest);
    if let Err(error) = File::open(dir).and_then(|d| d.sync_all()) {
        tracing::warn!(dir = %dir.display(), %error, "cannot fsync directory after rename");
    }
    Ok(())
}

/// Rollback: writes `previous` (content, owner, mode) back over `dest` as an install does,
/// or, when there was no file before (`None`), removes `dest` and fsyncs the directory.
/// The owner is set only where it differs from the process's (a non-root daemon cannot
/// give a file away, and needs not for files it made).
pub(super) fn put_back(
    dest: &Path,
    previous: Option<&LiveFile>,
) -> Result<super::Restored, InstallError> {
    let Some(prev) = previous else {
        fs::remove_file(dest).map_err(|source| InstallError::Stage {
            path: dest.to_owned(),
            step: "remove (rollback)",
            source,
        })?;
        let dir = dest_dir(dest);
        if let Err(error) = File::open(dir).and_then(|d| d.sync_all()) {
            tracing::warn!(dir = %dir.display(), %error, "cannot fsync directory after removal");
        }
        return Ok(super::Restored::Removed);
    };
    let uid = (prev.uid != nix::unistd::geteuid().as_raw()).then_some(prev.uid);
    let gid = (prev.gid != nix::unistd::getegid().as_raw()).then_some(prev.gid);
    let file = stage(dest, &prev.bytes, prev.mode, uid, gid)?;
    commit(file, dest)?;
    Ok(super::Restored::Previous)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staged_names_are_specific_to_one_destination() {
        let prefix = stage_prefix(Path::new("/etc/nginx/app.conf"));
        assert_eq!(prefix, ".app.conf.reconfd-");
        let p = prefix.as_bytes();
        assert!(is_staged_name(b".app.conf.reconfd-a1B2c3", p));
        assert!(!is_staged_name(b".app.conf.reconfd-", p));
        assert!(!is_staged_name(b".app.conf.reconfd-x.reconfd-abc", p));
        assert!(!is_staged_name(b".app.conf123456", p));
        assert!(!is_staged_name(b"app.conf", p));
    }

    #[test]
    fn bare_file_name_lives_in_the_current_directory() {
        assert_eq!(dest_dir(Path::new("app.conf")), Path::new("."));
        assert_eq!(dest_dir(Path::new("/etc/app.conf")), Path::new("/etc"));
    }
}
