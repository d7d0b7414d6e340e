//! etcd key paths: joining prefixes and keys as paths, and confd's rule for which etcd keys a
//! watched key covers.

/// Joins path pieces the way Go's `path.Join("/", a, b)` does: one leading `/`, no doubled or
/// trailing slashes (`/dc1` + `svc/` = `/dc1/svc`; `""` + `""` = `/`).
pub fn join(a: &str, b: &str) -> String {
    let mut out = String::from("/");
    for part in a.split('/').chain(b.split('/')).filter(|p| !p.is_empty()) {
        if out.len() > 1 {
            out.push('/');
        }
        out.push_str(part);
    }
    out
}

/// Whether `key` is `watched` itself or below it (`/services/apache` covers
/// `/services/apache` and `/services/apache/x`, not `/services/apachefoo`).
pub fn covers(watched: &str, key: &str) -> bool {
    if watched == "/" {
        return key.starts_with('/');
    }
    match key.strip_prefix(watched) {
        Some(rest) => rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

/// Strips `prefix` from a full key, giving the key as templates see it (always with a leading `/`).
pub fn strip(prefix: &str, key: &str) -> String {
    let rest = if prefix == "/" {
        key
    } else {
        key.strip_prefix(prefix).unwrap_or(key)
    };
    join("", rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_is_path_join() {
        assert_eq!(join("/dc1", "/svc"), "/dc1/svc");
        assert_eq!(join("dc1/", "svc/"), "/dc1/svc");
        assert_eq!(join("", ""), "/");
        assert_eq!(join("/", "/services/apache"), "/services/apache");
    }

    #[test]
    fn covers_is_segment_wise() {
        assert!(covers("/services/apache", "/services/apache"));
        assert!(covers("/services/apache", "/services/apache/a"));
        assert!(!covers("/services/apache", "/services/apachefoo"));
        assert!(covers("/", "/anything"));
    }

    #[test]
    fn strip_keeps_leading_slash() {
        assert_eq!(strip("/dc1", "/dc1/services/a"), "/services/a");
        assert_eq!(strip("/", "/services/a"), "/services/a");
        assert_eq!(strip("/dc1", "/dc1"), "/");
    }
}
