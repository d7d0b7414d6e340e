//! `reconfd check --print-systemd-paths`: the drop-in that makes the destinations' directories
//! writable under the unit's `ProtectSystem=strict`, checked for a tree of resources and by
//! `systemd-analyze verify` on a unit that carries it.

mod util;

use std::process::Command;

use util::{have_program, prerequisite, run, Tree};

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Three resources in two directories (one nested in the other) and one in a directory whose
/// name has a space: the drop-in lists each directory once, the nested one not at all, the
/// spaced one quoted; stdout is nothing but the drop-in.
#[test]
fn prints_each_destination_directory_once() {
    let t = Tree::new();
    let out = t.out();
    std::fs::create_dir_all(out.join("sites/enabled")).unwrap();
    std::fs::create_dir_all(t.root.path().join("with space")).unwrap();
    t.template("a.tera", "x\n");
    let res = |name: &str, dest: &str| {
        t.resource(
            name,
            &format!("[template]\nsrc = \"a.tera\"\ndest = \"{dest}\"\nkeys = [\"/a\"]\n"),
        );
    };
    res("one", "@OUT@/one.conf");
    res("two", "@OUT@/two.conf");
    res("nested", "@OUT@/sites/enabled/n.conf");
    let spaced = t.root.path().join("with space");
    res("spaced", &format!("{}/s.conf", spaced.display()));
    let o = run(t.reconfd(None, &["check", "--print-systemd-paths"]));
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let stdout = text(&o.stdout);
    let body: Vec<&str> = stdout.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(
        body,
        [
            "[Service]".to_owned(),
            format!("ReadWritePaths={} \"{}\"", out.display(), spaced.display()),
        ],
        "{stdout}"
    );
    assert!(
        !stdout.contains("resource(s) OK"),
        "only the drop-in: {stdout}"
    );

    // Appended to a service's [Service] section (as systemd applies a drop-in), the unit
    // verifies without a warning: every path absolute, the quoting understood.
    if !prerequisite(
        have_program("systemd-analyze"),
        "systemd-analyze is not installed (apt-get install systemd)",
    ) {
        return;
    }
    let unit = t.root.path().join("paths-test.service");
    std::fs::write(
        &unit,
        format!(
            "[Unit]\nDescription=t\n[Service]\nExecStart=/bin/true\n{}",
            body[1..].join("\n") + "\n"
        ),
    )
    .unwrap();
    let v = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&unit)
        .output()
        .unwrap();
    assert!(v.status.success(), "{}", text(&v.stderr));
    assert_eq!(text(&v.stderr).trim(), "", "systemd-analyze verify warned");
}

/// A problem still fails the command (exit 78, on stderr), and the drop-in still prints for
/// the resources that loaded.
#[test]
fn problems_still_fail_the_check() {
    let t = Tree::new();
    t.template("a.tera", "x\n");
    t.resource(
        "good",
        "[template]\nsrc = \"a.tera\"\ndest = \"@OUT@/g.conf\"\nkeys = [\"/a\"]\n",
    );
    t.resource(
        "bad",
        "[template]\nsrc = \"a.tera\"\ndest = \"@OUT@/b.conf\"\nkeys = [\"/a*\"]\n",
    );
    let o = run(t.reconfd(None, &["check", "--print-systemd-paths"]));
    assert_eq!(o.status.code(), Some(78), "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("bad.toml:4:"),
        "{}",
        text(&o.stderr)
    );
    assert!(
        text(&o.stdout).contains(&format!("ReadWritePaths={}\n", t.out().display())),
        "{}",
        text(&o.stdout)
    );
}
