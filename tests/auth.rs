//! Authentication against a real etcd with auth enabled: a read-only role, every password
//! source, wrong passwords, denied prefixes and expired tokens. Every test also checks that
//! the password never shows up in what reconfd prints.

mod util;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use util::{run, Etcd, Tree};

/// The reader's password: distinctive, so any leak is found by a plain substring search.
const PASSWORD: &str = "Pw-7c1d-sekrit";
const ROOT_PASSWORD: &str = "root-9f2e-sekrit";
const WRONG: &str = "wrong-41aa-guess";
const USER: &str = "reconfd";

const UPSTREAM: &str =
    "{% for s in getvs(pattern=\"/services/apache/*\") %}server {{ s }};\n{% endfor %}";

/// An etcd with auth on, `/svc/services/apache/a` written, and user `reconfd` allowed to
/// read `/svc` only.
fn etcd_with_reader(args: &[&str]) -> Etcd {
    let mut etcd = Etcd::start_with(args);
    etcd.put("/svc/services/apache/a", "10.0.0.1:80");
    etcd.put("/secret/services/apache/a", "10.9.9.9:80");
    etcd.enable_auth(ROOT_PASSWORD);
    etcd.add_reader(USER, PASSWORD, "reconfd-read", &["/svc"]);
    etcd
}

/// A tree with resource `app` under prefix `/svc` rendering to `out/app.conf`.
fn tree(extra: &str) -> Tree {
    let t = Tree::new();
    app_resource(&t, extra);
    t
}

fn app_resource(t: &Tree, extra: &str) {
    t.template("app.tera", UPSTREAM);
    t.resource(
        "app",
        &format!("[template]\nsrc = \"app.tera\"\ndest = \"@OUT@/app.conf\"\nprefix = \"/svc\"\nkeys = [\"/services/apache\"]\n{extra}"),
    );
}

fn secret_file(dir: &Path, name: &str, text: &str, mode: u32) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
    p
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Neither password appears anywhere in `out`.
fn assert_no_password(out: &str) {
    for pw in [PASSWORD, ROOT_PASSWORD, WRONG] {
        assert!(
            !out.contains(pw),
            "a password leaked into the output:\n{out}"
        );
    }
}

#[test]
fn role_limited_user_reads_and_renders() {
    let etcd = etcd_with_reader(&[]);
    let t = tree("");
    let pw = secret_file(t.root.path(), "pw", &format!("{PASSWORD}\n"), 0o600);
    let pw = pw.display().to_string();
    let once = |extra: &[&str]| {
        let mut args = vec!["once", "--username", USER, "--password-file", &pw];
        args.extend_from_slice(extra);
        run(t.reconfd(Some(&etcd), &args))
    };
    let o = once(&["--noop", "--log-level", "debug"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("+server 10.0.0.1:80;"), "{}", text(&o));
    assert_no_password(&text(&o));
    let o = once(&["--log-level", "trace"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(t.read("app.conf"), "server 10.0.0.1:80;\n");
    assert_no_password(&text(&o));
}

#[test]
fn wrong_password_names_user_and_endpoint() {
    let etcd = etcd_with_reader(&[]);
    let t = tree("");
    let pw = secret_file(t.root.path(), "pw", &format!("{WRONG}\n"), 0o600);
    let pw = pw.display().to_string();
    let o = run(t.reconfd(
        Some(&etcd),
        &[
            "once",
            "--username",
            USER,
            "--password-file",
            &pw,
            "--log-level",
            "trace",
        ],
    ));
    assert_eq!(o.status.code(), Some(77), "{}", text(&o));
    let out = text(&o);
    assert!(out.contains(&format!("user \"{USER}\"")), "{out}");
    assert!(out.contains(&etcd.endpoint), "{out}");
    assert!(out.contains("authentication failed"), "{out}");
    assert_no_password(&out);
    assert!(!t.out().join("app.conf").exists());
}

#[test]
fn denied_prefix_fails_only_its_resource() {
    let etcd = etcd_with_reader(&[]);
    let t = tree("");
    t.resource(
        "secret",
        "[template]\nsrc = \"app.tera\"\ndest = \"@OUT@/secret.conf\"\nprefix = \"/secret\"\nkeys = [\"/services/apache\"]\n",
    );
    let mut c = t.reconfd(Some(&etcd), &["once", "--username", USER]);
    c.env("RECONFD_ETCD_PASSWORD", PASSWORD);
    let o = run(c);
    assert_eq!(o.status.code(), Some(77), "{}", text(&o));
    let out = text(&o);
    assert!(
        out.contains(&format!(
            "etcd user \"{USER}\" may not read /secret/services/apache"
        )),
        "{out}"
    );
    assert!(out.contains("secret.toml"), "{out}");
    assert_eq!(t.read("app.conf"), "server 10.0.0.1:80;\n");
    assert!(!t.out().join("secret.conf").exists());
    assert_no_password(&out);
}

#[test]
fn password_file_readable_by_others_is_refused() {
    let etcd = etcd_with_reader(&[]);
    let t = tree("");
    let pw = secret_file(t.root.path(), "pw", &format!("{PASSWORD}\n"), 0o644);
    for sub in ["once", "check"] {
        let pw = pw.display().to_string();
        let o = run(t.reconfd(
            Some(&etcd),
            &[sub, "--username", USER, "--password-file", &pw],
        ));
        assert_eq!(o.status.code(), Some(78), "{sub}: {}", text(&o));
        let out = text(&o);
        assert!(out.contains(&pw), "{out}");
        assert!(out.contains("readable by group and others"), "{out}");
        assert_no_password(&out);
    }
    assert!(!t.out().join("app.conf").exists());
}

#[test]
fn systemd_credential_is_read_from_the_credentials_directory() {
    let etcd = etcd_with_reader(&[]);
    let t = tree("");
    let creds = t.root.path().join("creds");
    std::fs::create_dir(&creds).unwrap();
    // systemd's credential files are 0400, but the mode is systemd's business: not checked.
    secret_file(&creds, "etcd-password", &format!("{PASSWORD}\n"), 0o444);
    let config = t.root.path().join("reconfd.toml");
    std::fs::write(
        &config,
        format!("[etcd]\nusername = \"{USER}\"\npassword_credential = \"etcd-password\"\n"),
    )
    .unwrap();
    let config = config.display().to_string();
    let mut c = t.reconfd(Some(&etcd), &["once", "--config", &config]);
    c.env("CREDENTIALS_DIRECTORY", &creds);
    let o = run(c);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(t.read("app.conf"), "server 10.0.0.1:80;\n");
    assert_no_password(&text(&o));

    // Outside systemd the directory is not set: say what is missing.
    let mut c = t.reconfd(Some(&etcd), &["once", "--config", &config]);
    c.env_remove("CREDENTIALS_DIRECTORY");
    let o = run(c);
    assert_eq!(o.status.code(), Some(78), "{}", text(&o));
    assert!(
        text(&o).contains("LoadCredential=etcd-password"),
        "{}",
        text(&o)
    );
}

#[test]
fn environment_password_never_reaches_commands() {
    let etcd = etcd_with_reader(&[]);
    let t = Tree::new();
    let env_dump = t.root.path().join("env");
    app_resource(
        &t,
        &format!(
            "check_cmd = \"env > {0}.check\"\nreload_cmd = \"env > {0}.reload\"\n",
            env_dump.display()
        ),
    );
    let mut c = t.reconfd(Some(&etcd), &["once", "--username", USER]);
    c.env("RECONFD_ETCD_PASSWORD", PASSWORD);
    let o = run(c);
    assert!(o.status.success(), "{}", text(&o));
    for f in ["check", "reload"] {
        let env = std::fs::read_to_string(env_dump.with_extension(f)).unwrap();
        assert!(env.contains("PATH="), "{env}");
        assert_no_password(&env);
    }
}

/// etcd's simple tokens expire after `--auth-token-ttl` seconds without use. An idle daemon
/// must still apply the next change, and after a restart of etcd (which forgets every token)
/// too.
/// `run` as a user who may read `/svc` and `/web` but not `/secret`, nor the keys between
/// them: the resource watching `/secret` is not rendered while the others are, and changes
/// keep arriving although the one watch covering both prefixes is refused (it is split).
#[test]
fn run_with_denied_keys_renders_and_follows_the_allowed_ones() {
    let mut etcd = Etcd::start();
    etcd.put("/svc/services/apache/a", "10.0.0.1:80");
    etcd.put("/web/services/apache/a", "10.0.1.1:80");
    etcd.put("/secret/services/apache/a", "10.9.9.9:80");
    etcd.enable_auth(ROOT_PASSWORD);
    etcd.add_reader(USER, PASSWORD, "reconfd-read", &["/svc", "/web"]);
    let t = tree("debounce = \"0\"\n");
    for (name, prefix) in [("secret", "/secret"), ("web", "/web")] {
        t.resource(
            name,
            &format!("[template]\nsrc = \"app.tera\"\ndest = \"@OUT@/{name}.conf\"\nprefix = \"{prefix}\"\nkeys = [\"/services/apache\"]\ndebounce = \"0\"\n"),
        );
    }
    let pw = secret_file(t.root.path(), "pw", &format!("{PASSWORD}\n"), 0o600);
    let pw = pw.display().to_string();
    let d = t.daemon(&etcd, &["--username", USER, "--password-file", &pw]);
    d.wait_ready();
    assert_eq!(t.read("app.conf"), "server 10.0.0.1:80;\n");
    assert_eq!(t.read("web.conf"), "server 10.0.1.1:80;\n");
    assert!(!t.out().join("secret.conf").exists(), "{}", d.log());
    let log = d.log();
    assert!(
        log.contains(&format!(
            "etcd user \"{USER}\" may not read /secret/services/apache"
        )) && log.contains("secret.toml: not rendered"),
        "{log}"
    );

    etcd.put("/web/services/apache/b", "10.0.1.2:80");
    util::wait_for(Duration::from_secs(20), "the change under /web", || {
        (t.read("web.conf") == "server 10.0.1.1:80;\nserver 10.0.1.2:80;\n").then_some(())
    });
    etcd.delete("/svc/services/apache/a");
    etcd.put("/svc/services/apache/b", "10.0.0.2:80");
    util::wait_for(Duration::from_secs(20), "the changes under /svc", || {
        (t.read("app.conf") == "server 10.0.0.2:80;\n").then_some(())
    });
    // Each split watcher resumes from its own revision after etcd restarts.
    etcd.restart();
    etcd.put("/web/services/apache/c", "10.0.1.3:80");
    util::wait_for(
        Duration::from_secs(30),
        "the change after a restart",
        || t.read("web.conf").contains("10.0.1.3:80").then_some(()),
    );
    assert_eq!(
        t.read("web.conf"),
        "server 10.0.1.1:80;\nserver 10.0.1.2:80;\nserver 10.0.1.3:80;\n"
    );
    assert_eq!(t.read("app.conf"), "server 10.0.0.2:80;\n");
    let log = d.log();
    assert!(
        log.contains("watching each key, and the keys below it, on its own"),
        "{log}"
    );
    assert!(!t.out().join("secret.conf").exists(), "{log}");

    // Read on /web is revoked; etcd checks it when the watch is created again (after a
    // restart): only the web resource stops, and its file stays as it was.
    etcd.etcdctl(&[
        "role",
        "revoke-permission",
        "reconfd-read",
        "--prefix=true",
        "/web",
    ]);
    etcd.restart();
    d.wait_log(Duration::from_secs(30), "web.toml: not rendered", 1);
    etcd.put("/web/services/apache/d", "10.0.1.4:80");
    etcd.put("/svc/services/apache/e", "10.0.0.5:80");
    util::wait_for(
        Duration::from_secs(30),
        "a change under /svc after the revoke",
        || t.read("app.conf").contains("10.0.0.5:80").then_some(()),
    );
    assert_eq!(
        t.read("web.conf"),
        "server 10.0.1.1:80;\nserver 10.0.1.2:80;\nserver 10.0.1.3:80;\n"
    );
    let log = d.log();
    assert!(
        log.contains(&format!(
            "etcd user \"{USER}\" may not read /secret/services/apache, /web/services/apache"
        )),
        "{log}"
    );
    assert_no_password(&log);
}

/// An idle daemon's token expires (simple tokens, TTL 2 s): the open watch still delivers
/// the next change, which needs no token. An etcd restart then invalidates every token: the
/// daemon must log in again (counted from etcd's own `Authenticate` metric, less the test's
/// logins) to follow on, and goes on through another idle expiry. Without the re-login the
/// count stays at zero and the restart's change never arrives.
#[test]
fn expired_token_of_an_idle_daemon() {
    let mut etcd = etcd_with_reader(&["--auth-token", "simple", "--auth-token-ttl", "2"]);
    assert_eq!(
        etcd.logins_by_others(),
        0.0,
        "the test's own logins are not all accounted for"
    );
    let t = tree("debounce = \"0\"\n");
    let pw = secret_file(t.root.path(), "pw", &format!("{PASSWORD}\n"), 0o600);
    let pw = pw.display().to_string();
    let d = t.daemon(
        &etcd,
        &[
            "--username",
            USER,
            "--password-file",
            &pw,
            "--log-level",
            "debug",
        ],
    );
    d.wait_ready();
    assert_eq!(t.read("app.conf"), "server 10.0.0.1:80;\n");
    assert!(
        etcd.logins_by_others() >= 1.0,
        "reconfd rendered without logging in; log:\n{}",
        d.log()
    );

    // The premise, not a synchronisation: idle for more than the token's TTL.
    std::thread::sleep(Duration::from_secs(5));
    etcd.put("/svc/services/apache/b", "10.0.0.2:80");
    util::wait_for(Duration::from_secs(20), "the change after idling", || {
        (t.read("app.conf") == "server 10.0.0.1:80;\nserver 10.0.0.2:80;\n").then_some(())
    });

    // A restart forgets every token (and etcd's counters start from zero).
    etcd.restart();
    util::wait_for(
        Duration::from_secs(30),
        "reconfd to log in again after the restart",
        || (etcd.logins_by_others() >= 1.0).then_some(()),
    );
    std::thread::sleep(Duration::from_secs(5));
    etcd.delete("/svc/services/apache/a");
    util::wait_for(
        Duration::from_secs(30),
        "the change after an etcd restart",
        || (t.read("app.conf") == "server 10.0.0.2:80;\n").then_some(()),
    );
    assert_no_password(&d.log());
}

#[test]
fn keyring_without_a_session_says_what_to_use_instead() {
    let etcd = etcd_with_reader(&[]);
    let t = tree("");
    let config = t.root.path().join("reconfd.toml");
    std::fs::write(
        &config,
        format!("[etcd]\nusername = \"{USER}\"\npassword_keyring = true\n"),
    )
    .unwrap();
    let runtime = t.root.path().join("run");
    std::fs::create_dir(&runtime).unwrap();
    let config = config.display().to_string();
    let mut c = t.reconfd(Some(&etcd), &["once", "--config", &config]);
    c.env_remove("DBUS_SESSION_BUS_ADDRESS")
        .env("XDG_RUNTIME_DIR", &runtime);
    let o = run(c);
    assert_eq!(o.status.code(), Some(78), "{}", text(&o));
    let out = text(&o);
    assert!(
        out.contains("Secret Service") && out.contains("password_credential"),
        "{out}"
    );
}

/// The keyring path for real: a Secret Service (gnome-keyring) on a private session bus.
/// Where gnome-keyring or dbus-run-session is missing: a failure under CI, a visible skip
/// elsewhere.
#[test]
fn keyring_stores_and_serves_the_password() {
    if !util::prerequisite(
        util::have_program("gnome-keyring-daemon") && util::have_program("dbus-run-session"),
        "needs gnome-keyring and dbus-run-session (Debian: apt-get install gnome-keyring dbus)",
    ) {
        return;
    }
    let etcd = etcd_with_reader(&[]);
    let t = tree("");
    let home = t.root.path().join("home");
    let runtime = t.root.path().join("run");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::create_dir_all(&runtime).unwrap();
    std::fs::set_permissions(&runtime, std::fs::Permissions::from_mode(0o700)).unwrap();
    let config = t.root.path().join("reconfd.toml");
    std::fs::write(
        &config,
        format!(
            "confdir = \"{}\"\n[etcd]\nendpoints = [\"{}\"]\nusername = \"{USER}\"\npassword_keyring = true\n",
            t.confdir().display(),
            etcd.endpoint
        ),
    )
    .unwrap();
    let script = r#"set -e
echo -n unlock | gnome-keyring-daemon --unlock --components=secrets >/dev/null
printf '%s\n' "$PW" | "$RECONFD" credentials set --config "$CONF"
"$RECONFD" once --config "$CONF"
echo RENDERED
"$RECONFD" credentials delete --config "$CONF"
if "$RECONFD" once --config "$CONF"; then echo "once worked without a stored password"; exit 1; fi
"#;
    // A clean environment: only what the session and the script need.
    let mut c = std::process::Command::new("dbus-run-session");
    c.args(["--", "sh", "-c", script])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", &home)
        .env("XDG_RUNTIME_DIR", &runtime)
        .env("PW", PASSWORD)
        .env("RECONFD", env!("CARGO_BIN_EXE_reconfd"))
        .env("CONF", &config);
    let o = run(c);
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    assert!(out.contains("stored the password of etcd user"), "{out}");
    assert!(out.contains("RENDERED"), "{out}");
    assert!(out.contains("no password is stored"), "{out}");
    assert_eq!(t.read("app.conf"), "server 10.0.0.1:80;\n");
    // The password went in through stdin: only the shell's own variable held it.
    assert_no_password(&out);
}
