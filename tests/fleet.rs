//! One config for a whole fleet: `prefix` and `keys` with host specifiers (`%H`, `%l`, `%m`),
//! against a real etcd. The host's identity comes through the documented override
//! (`RECONFD_HOSTNAME`, `RECONFD_MACHINE_ID`), so two daemons on this one machine can play two
//! hosts.

mod util;

use std::path::Path;
use std::time::Duration;

use util::{run, Etcd, Tree};

/// A config file every "host" shares: the endpoint, and a prefix naming the host.
fn shared_config(dir: &Path, etcd: &Etcd) -> std::path::PathBuf {
    let file = dir.join("reconfd.toml");
    std::fs::write(
        &file,
        format!(
            "prefix = \"/hosts/%l\"\n[etcd]\nendpoints = [\"{}\"]\n[batch]\ndebounce = \"0\"\n",
            etcd.endpoint
        ),
    )
    .unwrap();
    file
}

/// A host's confdir: the same resource everywhere (only the output directory, which is this
/// test's stand-in for each host's /etc, differs).
fn host_tree() -> Tree {
    let t = Tree::new();
    t.template(
        "motd.tera",
        "{{ getv(key=\"/motd\") }}{% for m in getvs(pattern=\"/machine/*\") %} on {{ m }}{% endfor %}\n",
    );
    t.resource(
        "motd",
        "[template]\nsrc = \"motd.tera\"\ndest = \"@OUT@/motd\"\nkeys = [\"/motd\", \"/machine/%m\"]\n",
    );
    t
}

const ID1: &str = "11111111111111111111111111111111";
const ID2: &str = "22222222222222222222222222222222";

#[test]
fn two_hosts_with_one_config_render_their_own_subtrees() {
    let etcd = Etcd::start();
    let shared = tempfile::tempdir().unwrap();
    let config = shared_config(shared.path(), &etcd);
    // Each host reads only its own machine's key, though its subtree holds another.
    let keys = [
        ("/hosts/web1/motd".to_owned(), "hello web1"),
        (format!("/hosts/web1/machine/{ID1}"), "m1"),
        (format!("/hosts/web1/machine/{ID2}"), "not web1's"),
        ("/hosts/web2/motd".to_owned(), "hello web2"),
        (format!("/hosts/web2/machine/{ID2}"), "m2"),
    ];
    let kvs: Vec<(&str, &str)> = keys.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    etcd.put_all(&kvs);
    let hosts = [("web1", ID1), ("web2.dc1.example.net", ID2)];
    let trees: Vec<Tree> = hosts.iter().map(|_| host_tree()).collect();
    let daemons: Vec<util::Daemon> = hosts
        .iter()
        .zip(&trees)
        .map(|((name, id), t)| {
            let mut c = t.reconfd(None, &["run"]);
            c.arg("--config").arg(&config);
            c.env("RECONFD_HOSTNAME", name)
                .env("RECONFD_MACHINE_ID", id);
            util::Daemon::spawn(c)
        })
        .collect();
    for d in &daemons {
        d.wait_ready();
    }
    assert_eq!(trees[0].read("motd"), "hello web1 on m1\n");
    assert_eq!(trees[1].read("motd"), "hello web2 on m2\n");

    // A change in one host's subtree reaches that host only.
    etcd.put("/hosts/web2/motd", "bye web2");
    util::wait_for(Duration::from_secs(20), "web2 to follow its key", || {
        (trees[1].read("motd") == "bye web2 on m2\n").then_some(())
    });
    etcd.put("/hosts/web1/motd", "bye web1");
    util::wait_for(Duration::from_secs(20), "web1 to follow its key", || {
        (trees[0].read("motd") == "bye web1 on m1\n").then_some(())
    });
    assert_eq!(trees[1].read("motd"), "bye web2 on m2\n");

    // Each daemon watches its own prefix: its log names the expanded keys, never a specifier.
    for (d, (name, _)) in daemons.iter().zip(hosts) {
        let short = name.split('.').next().unwrap();
        assert!(!d.log().contains("%l"), "{}", d.log());
        let o = {
            let mut c = trees[0].reconfd(None, &["check"]);
            c.arg("--config").arg(&config);
            c.env("RECONFD_HOSTNAME", name)
                .env("RECONFD_MACHINE_ID", ID1);
            run(c)
        };
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(o.status.success(), "{out}");
        assert!(
            out.contains(&format!(
                "prefix /hosts/{short}, watches /hosts/{short}/motd /hosts/{short}/machine/{ID1}"
            )),
            "{out}"
        );
    }
}

#[test]
fn an_unknown_specifier_fails_check_and_once_naming_file_and_line() {
    let etcd = Etcd::start();
    let t = Tree::new();
    t.template("a.tera", "x\n");
    let bad = t.resource(
        "bad",
        "[template]\nsrc = \"a.tera\"\ndest = \"@OUT@/a\"\nkeys = [\n  \"/ok\",\n  \"/hosts/%h\",\n]\n",
    );
    t.resource(
        "good",
        "[template]\nsrc = \"a.tera\"\ndest = \"@OUT@/b\"\nkeys = [\"/k\"]\n",
    );
    let o = run(t.reconfd(None, &["check"]));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(78), "{err}");
    assert!(
        err.contains(&format!(
            "{}:6: key: unknown specifier \"%h\" in \"/hosts/%h\"",
            bad.display()
        )),
        "{err}"
    );
    // The other resource still renders.
    let o = run(t.reconfd(Some(&etcd), &["once"]));
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(t.out_files(), vec!["b"]);
    // A bad global prefix is a configuration error of the file, on its line.
    let cfg = t.root.path().join("reconfd.toml");
    std::fs::write(&cfg, "# fleet\nprefix = \"/hosts/%H/%\"\n").unwrap();
    let mut c = t.reconfd(Some(&etcd), &["once"]);
    c.arg("--config").arg(&cfg);
    let o = run(c);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(78), "{err}");
    assert!(
        err.contains(&format!("{}:2: prefix: ", cfg.display())) && err.contains("lone \"%\""),
        "{err}"
    );
}

#[test]
fn the_machine_id_comes_from_the_override_or_is_refused_when_malformed() {
    let etcd = Etcd::start();
    let t = Tree::new();
    t.template("a.tera", "{{ getv(key=\"/id\") }}\n");
    t.resource(
        "a",
        "[template]\nsrc = \"a.tera\"\ndest = \"@OUT@/a\"\nprefix = \"/m/%m\"\nkeys = [\"/id\"]\n",
    );
    etcd.put(&format!("/m/{ID2}/id"), "machine two");
    let mut c = t.reconfd(Some(&etcd), &["once"]);
    c.env("RECONFD_MACHINE_ID", ID2);
    let o = run(c);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(t.read("a"), "machine two\n");
    let mut c = t.reconfd(Some(&etcd), &["check"]);
    c.env("RECONFD_MACHINE_ID", "uninitialized");
    let o = run(c);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(78), "{err}");
    assert!(
        err.contains("machine ID from RECONFD_MACHINE_ID is \"uninitialized\", not 32 hex digits"),
        "{err}"
    );
}
