//! `reconfd check --print-systemd-paths`: the systemd drop-in that lets the sandboxed unit
//! (`ProtectSystem=strict`) write what the configured resources need, so an operator never
//! guesses `ReadWritePaths=`.
//!
//! reconfd writes nothing but its destinations, and each one through a staged file beside it
//! that is renamed over it: so the directory of every destination must be writable, not only
//! the file. Nothing else is written by reconfd itself (no pid file, no state directory; the
//! status and metrics go over the `[metrics]` listener). What `check_cmd` and `reload_cmd`
//! write is theirs and cannot be known here: the drop-in says so.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The directories to make writable for destinations `dests`: each destination's directory,
/// without duplicates and without one that an ancestor in the list already covers, sorted.
pub fn writable_dirs<'a>(dests: impl IntoIterator<Item = &'a Path>) -> Vec<PathBuf> {
    let dirs: BTreeSet<PathBuf> = dests
        .into_iter()
        .map(|d| d.parent().unwrap_or(Path::new("/")).to_path_buf())
        .collect();
    // Sorted, an ancestor comes before its descendants.
    let mut out: Vec<PathBuf> = Vec::new();
    for dir in dirs {
        if !out.iter().any(|kept| dir.starts_with(kept)) {
            out.push(dir);
        }
    }
    out
}

/// The drop-in text for `dirs` (from [`writable_dirs`]), with comments saying where it comes
/// from and where it goes. `confdir` is named in the comment; `unit` is the unit's name.
pub fn drop_in(dirs: &[PathBuf], conf_d: &Path, unit: &str) -> String {
    let mut out = format!(
        "# Written by `reconfd check --print-systemd-paths` for the resources in {}.\n\
         # reconfd stages each file beside its destination and renames it over it, so each\n\
         # destination's directory must be writable. What check_cmd and reload_cmd write\n\
         # themselves (nginx -t: its error log and temp directories) is not known here: add it.\n\
         # Install as /etc/systemd/system/{unit}.d/reconfd-paths.conf, then\n\
         # systemctl daemon-reload && systemctl restart {unit}\n\
         [Service]\n",
        conf_d.display()
    );
    if dirs.is_empty() {
        out.push_str("# No resources: nothing to add.\n");
    } else {
        let list: Vec<String> = dirs.iter().map(|d| quoted(d)).collect();
        out.push_str(&format!("ReadWritePaths={}\n", list.join(" ")));
    }
    out
}

/// The unit that reads `config`: `reconfd@SITE.service` for `/etc/reconfd/SITE.toml` (what the
/// template unit reads), else `reconfd.service`.
pub fn unit_for(config: Option<&Path>) -> String {
    let site = config
        .filter(|c| c.parent() == Some(Path::new("/etc/reconfd")))
        .and_then(|c| {
            c.extension()
                .is_some_and(|e| e == "toml")
                .then(|| c.file_stem())
        })
        .flatten()
        .and_then(|s| s.to_str())
        .filter(|s| *s != "reconfd");
    match site {
        Some(site) => format!("reconfd@{site}.service"),
        None => "reconfd.service".to_owned(),
    }
}

/// A path as one word of a systemd list: quoted when it holds white space or quotes, with
/// systemd's C-style escapes for `"` and `\`; a leading `-`/`+` (systemd's prefixes) is escaped
/// too, so the path is never read as optional.
fn quoted(path: &Path) -> String {
    let text = path.display().to_string();
    let plain = !text
        .chars()
        .any(|c| c.is_whitespace() || c == '"' || c == '\'' || c == '\\');
    if plain {
        return text;
    }
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            _ => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directories_are_deduplicated_and_covered_ones_dropped() {
        let dests = [
            Path::new("/etc/nginx/sites-enabled/a.conf"),
            Path::new("/etc/nginx/nginx.conf"),
            Path::new("/etc/haproxy/haproxy.cfg"),
            Path::new("/etc/nginx/sites-enabled/b.conf"),
            Path::new("/etc/nginxx/c.conf"),
        ];
        assert_eq!(
            writable_dirs(dests),
            [
                PathBuf::from("/etc/haproxy"),
                PathBuf::from("/etc/nginx"),
                PathBuf::from("/etc/nginxx"),
            ]
        );
    }

    #[test]
    fn a_site_config_names_the_template_units_instance() {
        assert_eq!(unit_for(None), "reconfd.service");
        let p = |s: &str| Some(PathBuf::from(s));
        assert_eq!(
            unit_for(p("/etc/reconfd/reconfd.toml").as_deref()),
            "reconfd.service"
        );
        assert_eq!(
            unit_for(p("/etc/reconfd/dc1.toml").as_deref()),
            "reconfd@dc1.service"
        );
        assert_eq!(unit_for(p("/srv/x/dc1.toml").as_deref()), "reconfd.service");
    }

    #[test]
    fn the_drop_in_lists_them_in_a_service_section() {
        let dirs = [PathBuf::from("/etc/a"), PathBuf::from("/srv/with space")];
        let text = drop_in(&dirs, Path::new("/etc/reconfd/conf.d"), "reconfd.service");
        assert!(text.contains("\n[Service]\nReadWritePaths=/etc/a \"/srv/with space\"\n"));
        assert!(text.contains("/etc/systemd/system/reconfd.service.d/"));
        assert!(text
            .lines()
            .all(|l| l.starts_with('#') || l == "[Service]" || l.starts_with("ReadWritePaths=")));
    }
}
