//! Rollback of a failed reload, end to end: a real etcd, a real nginx serving the rendered
//! file, and a `reload_cmd` that fails once (through a flag file) before it reloads nginx.
//! The previous file goes back and nginx is reloaded on it, then the retry installs the new
//! one when the reload passes. And a destination that did not exist before is removed again.

mod util;

use std::path::Path;
use std::time::{Duration, Instant};

use util::nginx::Nginx;
use util::{Daemon, Etcd, Tree};

/// Long enough for any single event on a loaded machine; never reached when things work.
const EVENT: Duration = Duration::from_secs(20);

/// Waits until `path` holds exactly `want`.
fn wait_content(d: &Daemon, path: &Path, want: Option<&str>) {
    let deadline = Instant::now() + EVENT;
    loop {
        let got = std::fs::read_to_string(path).ok();
        if got.as_deref() == want {
            return;
        }
        if Instant::now() > deadline {
            panic!(
                "timed out waiting for {} to hold {want:?}; it holds {got:?}\ndaemon log:\n{}",
                path.display(),
                d.log()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A shell script for reload_cmd: appends the destination's content to `seen`, fails once
/// when `ok` is missing (creating it), else runs `then`.
fn reload_script(t: &Tree, dest: &Path, then: &str) -> String {
    let r = t.root.path();
    let script = r.join("reload.sh");
    std::fs::write(
        &script,
        format!(
            "cat {dest} >> {seen} 2>/dev/null || echo '(none)' >> {seen}\nif [ ! -e {ok} ]; then touch {ok}; echo 'refused by the test'; exit 1; fi\n{then}\n",
            dest = dest.display(),
            seen = r.join("seen").display(),
            ok = r.join("ok").display(),
        ),
    )
    .unwrap();
    format!("sh {}", script.display())
}

/// v1 is live in nginx; v2's reload fails once: v1 goes back on disk, nginx reloads it (and
/// keeps serving v1), one "rolled back" warning names both outcomes; the retry installs v2
/// and nginx serves it.
#[test]
fn a_failed_reload_puts_the_old_file_back_and_the_retry_installs_the_new_one() {
    if !util::prerequisite(
        Nginx::available(),
        "nginx is not installed (Debian: apt-get install nginx)",
    ) {
        return;
    }
    let etcd = Etcd::start();
    let t = Tree::new();
    let nginx = Nginx::start(&t.out());
    let dest = t.out().join("site.conf");
    let reload = reload_script(
        &t,
        &dest,
        &format!(
            "exec /usr/sbin/nginx -s reload -c {}",
            nginx.conf().display()
        ),
    );
    t.template(
        "site.tera",
        &format!(
            "server {{ listen 127.0.0.1:{}; return 200 \"{{{{ getv(key=\"/app/version\") }}}}\\n\"; }}\n",
            nginx.port
        ),
    );
    t.resource(
        "site",
        &format!(
            "[template]\nsrc = \"site.tera\"\ndest = \"@OUT@/site.conf\"\nkeys = [\"/app\"]\ndebounce = \"0\"\nreload_limit = \"none\"\nreload_cmd = \"{reload}\"\n"
        ),
    );
    std::fs::write(t.root.path().join("ok"), b"").unwrap();
    etcd.put("/app/version", "v1");
    let d = t.daemon(&etcd, &[]);
    d.wait_ready();
    let serves = |body: &str| {
        let want = format!("{body}\n");
        util::wait_for(EVENT, &format!("nginx to serve {body}"), || {
            nginx.get().filter(|b| *b == want)
        });
    };
    serves("v1");

    std::fs::remove_file(t.root.path().join("ok")).unwrap();
    etcd.put("/app/version", "v2");
    d.wait_log(EVENT, "rolled back", 1);
    let log = d.log();
    let line = log.lines().find(|l| l.contains("rolled back")).unwrap();
    assert!(
        line.contains("refused by the test")
            && line.contains("the previous file is back, and reload_cmd passed after the rollback"),
        "{line}"
    );
    wait_content(&d, &dest, Some(&Nginx::site(nginx.port, "v2")));
    serves("v2");
    let seen = std::fs::read_to_string(t.root.path().join("seen")).unwrap();
    let bodies: Vec<&str> = seen
        .lines()
        .map(|l| l.split('"').nth(1).unwrap_or(l))
        .collect();
    assert_eq!(
        bodies,
        ["v1\\n", "v2\\n", "v1\\n", "v2\\n"],
        "reloads saw: install v1, failed v2, rolled back to v1, retried v2\n{seen}\n{}",
        nginx.error_log()
    );
    assert_eq!(t.out_files(), vec!["site.conf"]);
}

/// No file before the install: the failed reload removes the new file again (the service
/// never ran it), reload_cmd runs once more, and the retry installs it once the reload
/// passes.
#[test]
fn a_failed_reload_of_a_new_file_removes_it() {
    let etcd = Etcd::start();
    let t = Tree::new();
    let dest = t.out().join("new.conf");
    let reload = reload_script(&t, &dest, "exit 0");
    let reload = format!("{reload}; test -e {}", t.root.path().join("pass").display());
    t.template("new.tera", "value = {{ getv(key=\"/app/value\") }}\n");
    t.resource(
        "new",
        &format!(
            "[template]\nsrc = \"new.tera\"\ndest = \"@OUT@/new.conf\"\nkeys = [\"/app\"]\ndebounce = \"0\"\nreload_cmd = \"{reload}\"\n"
        ),
    );
    etcd.put("/app/value", "1");
    let d = t.daemon(&etcd, &[]);
    d.wait_log(EVENT, "rolled back", 1);
    assert!(
        d.log().contains(
            "there was no file before; the new one was removed, but reload_cmd after the rollback"
        ),
        "{}",
        d.log()
    );
    assert_eq!(t.out_files(), Vec::<String>::new());
    std::fs::write(t.root.path().join("pass"), b"").unwrap();
    wait_content(&d, &dest, Some("value = 1\n"));
    assert_eq!(t.out_files(), vec!["new.conf"]);
}
