//! User and group names to numeric ids, for a resource's `owner` and `group`.
//!
//! A dynamically linked reconfd asks glibc, which follows `/etc/nsswitch.conf` (files, LDAP,
//! SSSD, systemd-userdb, ...). A static one (`packaging/build-static.sh`) does not: glibc's
//! NSS loads its modules with `dlopen`, which from a static executable needs the shared
//! libraries of the very glibc version it was linked with, and a CoreOS host or a scratch
//! image has others or none. So the static build reads `/etc/passwd` and `/etc/group`
//! itself. Names that live only in another database (LDAP, SSSD) are not found there; give
//! `uid`/`gid` numbers instead. In a container, mount the host's two files read-only.
//!
//! Numeric ids never come here: they are used as written.

use std::path::Path;

/// Whether this executable was linked statically (`-C target-feature=+crt-static`).
pub const STATIC: bool = cfg!(target_feature = "crt-static");

/// Where names are looked up, for error messages.
pub const SOURCE: &str = if STATIC {
    "/etc/passwd and /etc/group (this reconfd is static and does not use NSS)"
} else {
    "the system's user and group databases (NSS)"
};

/// The user database file the static build reads.
pub const PASSWD: &str = "/etc/passwd";
/// The group database file the static build reads.
pub const GROUP: &str = "/etc/group";

/// The uid of user `name`, if the host has such a user.
pub fn uid_of(name: &str) -> Option<u32> {
    if STATIC {
        return id_in_file(Path::new(PASSWD), name);
    }
    nix::unistd::User::from_name(name)
        .ok()
        .flatten()
        .map(|u| u.uid.as_raw())
}

/// The gid of group `name`, if the host has such a group.
pub fn gid_of(name: &str) -> Option<u32> {
    if STATIC {
        return id_in_file(Path::new(GROUP), name);
    }
    nix::unistd::Group::from_name(name)
        .ok()
        .flatten()
        .map(|g| g.gid.as_raw())
}

/// The id (third field) of the first entry called `name` in a passwd(5) or group(5) file.
/// An unreadable file finds nothing, as a missing name does.
pub fn id_in_file(file: &Path, name: &str) -> Option<u32> {
    let text = std::fs::read(file).ok()?;
    id_in(&text, name)
}

/// [`id_in_file`] on the file's content. Lines are `name:password:id:...`; comments, blank
/// lines and NIS compat entries (`+`, `-`) are skipped, as glibc's files module does.
fn id_in(text: &[u8], name: &str) -> Option<u32> {
    text.split(|&b| b == b'\n').find_map(|line| {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() || matches!(line[0], b'#' | b'+' | b'-') {
            return None;
        }
        let mut fields = line.split(|&b| b == b':');
        if fields.next()? != name.as_bytes() {
            return None;
        }
        let _password = fields.next()?;
        std::str::from_utf8(fields.next()?)
            .ok()?
            .trim()
            .parse()
            .ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD_TEXT: &[u8] = b"# comment\n\
        root:x:0:0:root:/root:/bin/bash\n\
        \n\
        +nisuser::::::\n\
        nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n\
        broken:x:notanumber:1::/:/bin/sh\n\
        short:x\n\
        nobody:x:1:1:second entry is never used:/:/bin/sh\n";

    #[test]
    fn first_entry_of_a_name_wins() {
        assert_eq!(id_in(PASSWD_TEXT, "root"), Some(0));
        assert_eq!(id_in(PASSWD_TEXT, "nobody"), Some(65534));
    }

    #[test]
    fn absent_broken_and_compat_entries_find_nothing() {
        for name in [
            "absent",
            "broken",
            "short",
            "+nisuser",
            "nisuser",
            "",
            "# comment",
        ] {
            assert_eq!(id_in(PASSWD_TEXT, name), None, "{name:?}");
        }
        // A name is matched whole, never as a prefix.
        assert_eq!(id_in(PASSWD_TEXT, "nob"), None);
    }

    #[test]
    fn group_files_have_the_same_shape() {
        let group = b"root:x:0:\nwww-data:x:33:\nadm:x:4:syslog,alice\r\n";
        assert_eq!(id_in(group, "www-data"), Some(33));
        assert_eq!(id_in(group, "adm"), Some(4));
    }

    #[test]
    fn files_on_disk_and_missing_files() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("passwd");
        std::fs::write(&f, PASSWD_TEXT).unwrap();
        assert_eq!(id_in_file(&f, "nobody"), Some(65534));
        assert_eq!(id_in_file(&d.path().join("absent"), "root"), None);
    }

    /// Whichever way this build looks names up, the host's root is uid and gid 0.
    #[test]
    fn root_resolves_on_this_host() {
        assert_eq!(uid_of("root"), Some(0));
        assert_eq!(gid_of("root"), Some(0));
        assert_eq!(uid_of("no-such-user-reconfd-test"), None);
    }
}
