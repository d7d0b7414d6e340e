//! `reconfd once` against a real etcd on loopback: the brief's scenarios end to end.

mod util;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use util::{run, Etcd, Tree};

const UPSTREAM: &str = "upstream apache_pool {\n{% for s in getvs(pattern=\"/services/apache/*\") %}    server {{ s }};\n{% endfor %}}\n";

fn nginx_resource(t: &Tree, extra: &str) {
    t.template("nginx.tera", UPSTREAM);
    t.resource(
        "nginx",
        &format!("[template]\nsrc = \"nginx.tera\"\ndest = \"@OUT@/app.conf\"\nkeys = [\"/services/apache\"]\n{extra}"),
    );
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn nginx_upstream_follows_registrations() {
    let etcd = Etcd::start();
    let t = Tree::new();
    nginx_resource(&t, "");
    etcd.put("/services/apache/10.0.0.6", "10.0.0.6:8888");
    etcd.put("/services/apache/10.0.0.7", "10.0.0.7:7777");
    etcd.put("/services/apachefoo/x", "not-me:1");
    let o = run(t.reconfd(Some(&etcd), &["once"]));
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        t.read("app.conf"),
        "upstream apache_pool {\n    server 10.0.0.6:8888;\n    server 10.0.0.7:7777;\n}\n"
    );
    etcd.delete("/services/apache/10.0.0.6");
    let o = run(t.reconfd(Some(&etcd), &["once"]));
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        t.read("app.conf"),
        "upstream apache_pool {\n    server 10.0.0.7:7777;\n}\n"
    );
    assert_eq!(t.out_files(), vec!["app.conf"]);
}

#[test]
fn many_services_behind_one_proxy() {
    let etcd = Etcd::start();
    let t = Tree::new();
    t.template(
        "proxy.tera",
        r#"{% for name in ls(path="/subdomain") %}upstream {{ name }} {
{% for s in getvs(pattern="/upstream/" ~ name ~ "/*") %}  server {{ s }};
{% endfor %}}
server {
  server_name {{ getv(key="/subdomain/" ~ name) }};
  location / { proxy_pass http://{{ name }}; }
}
{% endfor %}{% for kv in gets(pattern="/subdomain/*") %}# {{ kv.key | base }} = {{ kv.value }}
{% endfor %}"#,
    );
    t.resource(
        "proxy",
        "[template]\nsrc = \"proxy.tera\"\ndest = \"@OUT@/proxy.conf\"\nprefix = \"/svc\"\nkeys = [\"/subdomain\", \"/upstream\"]\n",
    );
    etcd.put_all(&[
        ("/svc/subdomain/app1", "www.app1.example"),
        ("/svc/subdomain/app2", "www.app2.example"),
        ("/svc/upstream/app1/server1", "10.0.1.1:80"),
        ("/svc/upstream/app1/server2", "10.0.1.2:80"),
        ("/svc/upstream/app2/server1", "10.0.2.1:80"),
    ]);
    let o = run(t.reconfd(Some(&etcd), &["once"]));
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        t.read("proxy.conf"),
        "upstream app1 {\n  server 10.0.1.1:80;\n  server 10.0.1.2:80;\n}\nserver {\n  server_name www.app1.example;\n  location / { proxy_pass http://app1; }\n}\n\
upstream app2 {\n  server 10.0.2.1:80;\n}\nserver {\n  server_name www.app2.example;\n  location / { proxy_pass http://app2; }\n}\n\
# app1 = www.app1.example\n# app2 = www.app2.example\n"
    );
}

#[test]
fn two_datacenters_share_one_etcd() {
    let etcd = Etcd::start();
    etcd.put_all(&[
        ("/svc_dc1/services/apache/a", "10.1.0.1:80"),
        ("/svc_dc2/services/apache/a", "10.2.0.1:80"),
    ]);
    for (dc, ip) in [("/svc_dc1", "10.1.0.1:80"), ("/svc_dc2", "10.2.0.1:80")] {
        let t = Tree::new();
        nginx_resource(&t, "");
        let o = run(t.reconfd(Some(&etcd), &["once", "--prefix", dc]));
        assert!(o.status.success(), "{}", stderr(&o));
        assert_eq!(
            t.read("app.conf"),
            format!("upstream apache_pool {{\n    server {ip};\n}}\n")
        );
    }
}

#[test]
fn missing_key_names_the_full_key_and_line_and_leaves_dest() {
    let etcd = Etcd::start();
    let t = Tree::new();
    t.template(
        "db.tera",
        "[mysqld]\nserver-id = {{ getv(key=\"/self/container/create_index\") }}\n",
    );
    t.resource("db", "[template]\nsrc = \"db.tera\"\ndest = \"@OUT@/my.cnf\"\nprefix = \"/dc1\"\nkeys = [\"/self\"]\n");
    std::fs::write(t.out().join("my.cnf"), "old\n").unwrap();
    let o = run(t.reconfd(Some(&etcd), &["once"]));
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("/self/container/create_index"), "{err}");
    assert!(err.contains("/dc1/self/container/create_index"), "{err}");
    assert!(
        err.contains("db.tera") && err.contains(":2:"),
        "no template line in: {err}"
    );
    assert_eq!(t.read("my.cnf"), "old\n");
    assert_eq!(t.out_files(), vec!["my.cnf"]);
}

#[test]
fn failing_check_leaves_dest_and_no_staged_file() {
    let etcd = Etcd::start();
    let t = Tree::new();
    let marker = t.out().join("../reloaded");
    nginx_resource(
        &t,
        &format!(
            "check_cmd = \"grep -q never-there {{{{.src}}}}\"\nreload_cmd = \"touch {}\"\n",
            marker.display()
        ),
    );
    std::fs::write(t.out().join("app.conf"), "live\n").unwrap();
    etcd.put("/services/apache/a", "10.0.0.1:80");
    let o = run(t.reconfd(Some(&etcd), &["once"]));
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("check_cmd"), "{}", stderr(&o));
    assert_eq!(t.read("app.conf"), "live\n");
    assert_eq!(t.out_files(), vec!["app.conf"]);
    assert!(!marker.exists(), "reload ran after a failed check");
}

#[test]
fn unchanged_output_writes_nothing_and_does_not_reload() {
    let etcd = Etcd::start();
    let t = Tree::new();
    let marker = t.root.path().join("reloads");
    nginx_resource(
        &t,
        &format!(
            "mode = \"0644\"\nreload_cmd = \"echo x >> {}\"\n",
            marker.display()
        ),
    );
    etcd.put("/services/apache/a", "10.0.0.1:80");
    let o = run(t.reconfd(Some(&etcd), &["once"]));
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(std::fs::read_to_string(&marker).unwrap(), "x\n");
    let before = std::fs::metadata(t.out().join("app.conf")).unwrap();
    etcd.put("/services/other", "unrelated");
    let o = run(t.reconfd(Some(&etcd), &["once"]));
    assert!(o.status.success(), "{}", stderr(&o));
    let after = std::fs::metadata(t.out().join("app.conf")).unwrap();
    assert_eq!(
        (before.ino(), before.mtime(), before.mtime_nsec()),
        (after.ino(), after.mtime(), after.mtime_nsec())
    );
    assert_eq!(
        std::fs::read_to_string(&marker).unwrap(),
        "x\n",
        "reloaded although nothing changed"
    );
}

#[test]
fn mode_and_owner_are_applied() {
    let etcd = Etcd::start();
    let t = Tree::new();
    nginx_resource(&t, "mode = \"0640\"\nowner = \"nobody\"\ngroup = 65534\n");
    etcd.put("/services/apache/a", "10.0.0.1:80");
    let o = run(t.reconfd(Some(&etcd), &["once"]));
    assert!(o.status.success(), "{}", stderr(&o));
    let m = std::fs::metadata(t.out().join("app.conf")).unwrap();
    assert_eq!(m.permissions().mode() & 0o7777, 0o640);
    if util::prerequisite(
        nix::unistd::geteuid().is_root(),
        "owner and group are applied only as root",
    ) {
        assert_eq!((m.uid(), m.gid()), (65534, 65534));
    }
}

#[test]
fn one_broken_resource_does_not_stop_the_others() {
    let etcd = Etcd::start();
    let t = Tree::new();
    nginx_resource(&t, "");
    t.template("broken.tera", "{{ getv(key=\"/nope\") }}\n");
    t.resource(
        "a-broken",
        "[template]\nsrc = \"broken.tera\"\ndest = \"@OUT@/broken.conf\"\nkeys = [\"/nope\"]\n",
    );
    t.resource("b-typo", "[template]\nsrc = \"nginx.tera\"\ndest = \"@OUT@/typo.conf\"\nkeys = [\"/x\"]\nrelaod_cmd = \"true\"\n");
    etcd.put("/services/apache/a", "10.0.0.1:80");
    let o = run(t.reconfd(Some(&etcd), &["once"]));
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("relaod_cmd"), "{}", stderr(&o));
    assert_eq!(
        t.read("app.conf"),
        "upstream apache_pool {\n    server 10.0.0.1:80;\n}\n"
    );
    assert_eq!(t.out_files(), vec!["app.conf"]);
}

#[test]
fn resources_sharing_a_dest_are_refused_and_the_others_render() {
    let etcd = Etcd::start();
    let t = Tree::new();
    nginx_resource(&t, "");
    t.template("x.tera", "{{ getv(key=\"/x\") }}\n");
    for name in ["x1", "x2"] {
        t.resource(
            name,
            "[template]\nsrc = \"x.tera\"\ndest = \"@OUT@/shared.conf\"\nkeys = [\"/x\"]\n",
        );
    }
    std::fs::write(t.out().join("shared.conf"), "live\n").unwrap();
    etcd.put("/services/apache/a", "10.0.0.1:80");
    etcd.put("/x", "new");
    let o = run(t.reconfd(Some(&etcd), &["once"]));
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("x1.toml") && err.contains("is also the dest of") && err.contains("x2.toml"),
        "{err}"
    );
    assert_eq!(
        t.read("shared.conf"),
        "live\n",
        "the shared file is left alone"
    );
    assert_eq!(
        t.read("app.conf"),
        "upstream apache_pool {\n    server 10.0.0.1:80;\n}\n"
    );
    let c = run(t.reconfd(Some(&etcd), &["check"]));
    assert_eq!(c.status.code(), Some(78), "{}", stderr(&c));
    assert!(stderr(&c).contains("is also the dest of"), "{}", stderr(&c));
}

#[test]
fn noop_prints_a_diff_runs_the_check_and_writes_nothing() {
    let etcd = Etcd::start();
    let t = Tree::new();
    let checked = t.root.path().join("checked");
    nginx_resource(
        &t,
        &format!(
            "check_cmd = \"cp {{{{.src}}}} {}\"\nreload_cmd = \"false\"\n",
            checked.display()
        ),
    );
    std::fs::write(
        t.out().join("app.conf"),
        "upstream apache_pool {\n    server 10.0.0.9:80;\n}\n",
    )
    .unwrap();
    etcd.put("/services/apache/a", "10.0.0.1:80");
    let o = run(t.reconfd(Some(&etcd), &["once", "--noop"]));
    assert!(o.status.success(), "{}", stderr(&o));
    let diff = String::from_utf8_lossy(&o.stdout);
    assert!(
        diff.contains("-    server 10.0.0.9:80;") && diff.contains("+    server 10.0.0.1:80;"),
        "{diff}"
    );
    assert_eq!(
        t.read("app.conf"),
        "upstream apache_pool {\n    server 10.0.0.9:80;\n}\n"
    );
    assert_eq!(
        std::fs::read_to_string(&checked).unwrap(),
        "upstream apache_pool {\n    server 10.0.0.1:80;\n}\n"
    );
    assert_eq!(t.out_files(), vec!["app.conf"]);
}

/// A member that accepts connections and never answers (SIGSTOP) is a timeout: exit 69,
/// the file kept, and not worded as if etcd had answered.
#[test]
fn a_hung_etcd_times_out_without_touching_files() {
    let etcd = Etcd::start();
    let t = Tree::new();
    nginx_resource(&t, "");
    std::fs::write(t.out().join("app.conf"), "live\n").unwrap();
    nix::sys::signal::kill(etcd.pid(), nix::sys::signal::Signal::SIGSTOP).unwrap();
    let o = run(t.reconfd(Some(&etcd), &["once"]));
    nix::sys::signal::kill(etcd.pid(), nix::sys::signal::Signal::SIGCONT).unwrap();
    assert_eq!(o.status.code(), Some(69), "EX_UNAVAILABLE: {}", stderr(&o));
    assert!(
        stderr(&o).contains(&format!("{}: timed out", etcd.endpoint)),
        "{}",
        stderr(&o)
    );
    assert!(!stderr(&o).contains("etcd answered"), "{}", stderr(&o));
    assert_eq!(
        std::fs::read_to_string(t.out().join("app.conf")).unwrap(),
        "live\n"
    );
}

#[test]
fn unreachable_etcd_fails_without_touching_files() {
    let t = Tree::new();
    nginx_resource(&t, "");
    std::fs::write(t.out().join("app.conf"), "live\n").unwrap();
    let port = util::free_port();
    let mut c = t.reconfd(None, &["once"]);
    c.args(["--endpoint", &format!("http://127.0.0.1:{port}")]);
    let o = run(c);
    assert_eq!(o.status.code(), Some(69), "EX_UNAVAILABLE: {}", stderr(&o));
    assert!(
        stderr(&o).contains(&format!(
            "cannot connect to http://127.0.0.1:{port}: connection refused"
        )),
        "{}",
        stderr(&o)
    );
    assert!(
        !stderr(&o).contains("tonic") && !stderr(&o).contains("Os {"),
        "no Debug structures: {}",
        stderr(&o)
    );
    assert!(
        stderr(&o).contains(&format!("127.0.0.1:{port}")),
        "{}",
        stderr(&o)
    );
    assert_eq!(t.read("app.conf"), "live\n");
}

fn nginx_available() -> bool {
    std::path::Path::new("/usr/sbin/nginx").exists()
}

/// A real nginx as check_cmd: a render that nginx rejects never reaches the live file.
#[test]
fn real_nginx_check_keeps_broken_config_out() {
    assert!(
        nginx_available(),
        "nginx is not installed (Debian: apt-get install nginx), see .ci/install-deps"
    );
    let etcd = Etcd::start();
    let t = Tree::new();
    let run_dir = t.root.path().join("run");
    std::fs::create_dir_all(&run_dir).unwrap();
    t.template(
        "full.tera",
        &format!(
            "pid {rd}/nginx.pid;\nerror_log stderr;\nevents {{}}\nhttp {{\n  access_log off;\n  client_body_temp_path {rd};\n  upstream pool {{\n{{% for s in getvs(pattern=\"/services/web/*\") %}}    server {{{{ s }}}};\n{{% endfor %}}  }}\n  server {{ listen 127.0.0.1:{port}; location / {{ proxy_pass http://pool; }} }}\n}}\n",
            rd = run_dir.display(),
            port = util::free_port()
        ),
    );
    t.resource(
        "nginx",
        "[template]\nsrc = \"full.tera\"\ndest = \"@OUT@/nginx.conf\"\nkeys = [\"/services/web\"]\ncheck_cmd = \"/usr/sbin/nginx -t -q -c {{.src}}\"\n",
    );
    etcd.put("/services/web/a", "127.0.0.1:8081");
    let o = run(t.reconfd(Some(&etcd), &["once"]));
    assert!(o.status.success(), "{}", stderr(&o));
    let good = t.read("nginx.conf");
    assert!(good.contains("server 127.0.0.1:8081;"));
    etcd.put("/services/web/b", "127.0.0.1:8082; bogus_directive");
    let o = run(t.reconfd(Some(&etcd), &["once"]));
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("bogus_directive"),
        "nginx's complaint should be logged: {}",
        stderr(&o)
    );
    assert_eq!(t.read("nginx.conf"), good);
    assert_eq!(t.out_files(), vec!["nginx.conf"]);
}

/// The install is durable: the staged file is fsynced before it is renamed over the
/// destination, and the directory is fsynced after the rename (else a crash could leave the
/// new name pointing at an empty file, or the old name). Observed with strace on the real
/// binary: the order of fsync(staged) < rename(staged → dest) < fsync(dir).
#[test]
fn install_fsyncs_the_file_then_renames_then_fsyncs_the_directory() {
    if !util::prerequisite(
        util::have_program("strace"),
        "strace is not installed (Debian: apt-get install strace)",
    ) {
        return;
    }
    let etcd = Etcd::start();
    let t = Tree::new();
    nginx_resource(&t, "");
    etcd.put("/services/apache/a", "10.0.0.1:80");
    let trace = t.root.path().join("strace.txt");
    let once = t.reconfd(Some(&etcd), &["once"]);
    let mut c = std::process::Command::new("strace");
    c.args([
        "-f",
        "-y",
        "-e",
        "trace=fsync,fdatasync,rename,renameat,renameat2",
        "-o",
    ])
    .arg(&trace)
    .arg(once.get_program())
    .args(once.get_args());
    for (k, v) in once.get_envs() {
        match v {
            Some(v) => c.env(k, v),
            None => c.env_remove(k),
        };
    }
    let o = run(c);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = t.out().display().to_string();
    let dest = format!("{out}/app.conf");
    let text = std::fs::read_to_string(&trace).unwrap();
    // Calls in the order they started ("<... resumed>" lines finish one started earlier).
    let calls: Vec<&str> = text
        .lines()
        .filter(|l| !l.contains("resumed>") && !l.contains("+++") && !l.contains("---"))
        .collect();
    let staged_prefix = format!("{out}/.app.conf.reconfd-");
    let rename = calls
        .iter()
        .position(|l| {
            l.contains("rename")
                && l.contains(&format!("\"{staged_prefix}"))
                && l.contains(&format!("\"{dest}\""))
        })
        .unwrap_or_else(|| panic!("no rename of a staged file over {dest}:\n{text}"));
    let staged = calls[rename]
        .split('"')
        .find(|s| s.starts_with(&staged_prefix))
        .unwrap()
        .to_owned();
    let file_sync = calls
        .iter()
        .position(|l| l.contains("sync(") && l.contains(&format!("<{staged}>")))
        .unwrap_or_else(|| panic!("the staged file {staged} was never fsynced:\n{text}"));
    let dir_sync = calls
        .iter()
        .rposition(|l| l.contains("fsync(") && l.contains(&format!("<{out}>")))
        .unwrap_or_else(|| panic!("the directory {out} was never fsynced:\n{text}"));
    assert!(
        file_sync < rename && rename < dir_sync,
        "want fsync(file) < rename < fsync(dir), got positions {file_sync}, {rename}, {dir_sync}:\n{text}"
    );
    assert_eq!(t.out_files(), vec!["app.conf"]);
}
