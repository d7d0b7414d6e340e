//! Values that are not text and keys that are not names, with a real etcd: an invalid UTF-8
//! value fails its resource naming the key (read and watch alike) unless the resource sets
//! `lossy_utf8 = true`; a key with a newline fails its resource naming the key, escaped;
//! the other resources are not affected.

mod util;

use std::time::Duration;

use base64::Engine as _;
use util::{run, Etcd, Tree};

/// Long enough for any single event on a loaded machine; never reached when things work.
const EVENT: Duration = Duration::from_secs(20);

/// Writes raw bytes, which `Etcd::put` (text only) cannot.
fn put_bytes(etcd: &Etcd, key: &[u8], value: &[u8]) {
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    etcd.post(
        "/v3/kv/put",
        &format!(r#"{{"key":"{}","value":"{}"}}"#, b64(key), b64(value)),
    );
}

/// A resource `name` listing `key = value` for every key under `/<name>` into `out/<name>.conf`.
fn lister(t: &Tree, name: &str, extra: &str) {
    t.template(
        "list.tera",
        "{% for kv in gets(pattern=\"/*/*\") %}{{ kv.key }} = {{ kv.value }}\n{% endfor %}",
    );
    t.resource(
        name,
        &format!("[template]\nsrc = \"list.tera\"\ndest = \"@OUT@/{name}.conf\"\nkeys = [\"/{name}\"]\ndebounce = \"0\"\n{extra}"),
    );
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// One pass: the invalid value fails its resource naming the key, the lossy resource renders
/// U+FFFD, the key with a newline fails its resource (escaped in the one-line error), and
/// the resource with plain text installs.
#[test]
fn once_refuses_invalid_utf8_and_control_characters_naming_the_key() {
    let etcd = Etcd::start();
    let t = Tree::new();
    lister(&t, "strict", "");
    lister(&t, "lossy", "lossy_utf8 = true\n");
    lister(&t, "names", "");
    lister(&t, "plain", "");
    put_bytes(&etcd, b"/strict/a", b"caf\xe9");
    put_bytes(&etcd, b"/lossy/a", b"caf\xe9");
    put_bytes(&etcd, b"/names/a\nserver evil", b"x");
    etcd.put("/plain/a", "ok");
    let o = run(t.reconfd(Some(&etcd), &["once"]));
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("etcd key /strict/a: the key or its value is not valid UTF-8"),
        "{err}"
    );
    assert!(
        err.contains("etcd key /names/a\\nserver evil: the key holds a control character"),
        "{err}"
    );
    assert!(err.contains("2 resource(s) failed"), "{err}");
    assert_eq!(t.out_files(), vec!["lossy.conf", "plain.conf"]);
    assert_eq!(t.read("lossy.conf"), "/lossy/a = caf\u{fffd}\n");
    assert_eq!(t.read("plain.conf"), "/plain/a = ok\n");
}

/// Through the watch: an invalid value arriving later fails the resource (the live file
/// stays) and names the key; a text value for that key installs again.
#[test]
fn a_watched_invalid_value_fails_its_resource_until_it_is_text_again() {
    let etcd = Etcd::start();
    let t = Tree::new();
    lister(&t, "strict", "");
    etcd.put("/strict/a", "one");
    let d = t.daemon(&etcd, &[]);
    d.wait_ready();
    let dest = t.out().join("strict.conf");
    d.wait_content(EVENT, &dest, "/strict/a = one\n");
    put_bytes(&etcd, b"/strict/a", b"\xff\xfe");
    d.wait_log(
        EVENT,
        "etcd key /strict/a: the key or its value is not valid UTF-8",
        1,
    );
    assert_eq!(t.read("strict.conf"), "/strict/a = one\n");
    etcd.put("/strict/a", "two");
    d.wait_content(EVENT, &dest, "/strict/a = two\n");
}
