//! reconfd for CoreOS: the static binary (packaging/build-static.sh) and the OCI image built
//! from scratch (packaging/build-image.sh), run with podman against a real etcd and a real
//! nginx on this machine.
//!
//! The static binary is built once per run of this test binary (cargo rebuilds only what
//! changed; a release build with LTO takes minutes on a busy machine), the image once from
//! it. podman runs as this sandbox allows (docs/coreos.md): `runc`, a containers.conf with
//! `default_ulimits = []`, `--cgroup-manager=cgroupfs`, the host's network.
//!
//! Needs root, podman, buildah, runc and busybox-static (.ci/install-deps): under `CI=true`
//! a missing one fails the test, elsewhere it is skipped with a message.

mod util;

use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use util::{wait_for, Etcd, Tree};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `Ok(())` when `ok`; otherwise fails under `CI=true` and returns `Err` (skip) elsewhere,
/// saying so.
fn require(ok: bool, what: &str) -> Result<(), ()> {
    if ok {
        return Ok(());
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{what} (CI=true: a missing prerequisite fails)"
    );
    eprintln!("SKIPPED: {what}");
    Err(())
}

fn have(cmd: &str) -> bool {
    Command::new(cmd)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Runs `cmd` to completion, at most `limit`, and returns its output; panics on a timeout.
fn run_for(mut cmd: Command, limit: Duration) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let (out, err) = (dir.path().join("out"), dir.path().join("err"));
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{cmd:?} did not finish in {limit:?}: {}",
                std::fs::read_to_string(&err).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    Output {
        status,
        stdout: std::fs::read(&out).unwrap(),
        stderr: std::fs::read(&err).unwrap(),
    }
}

fn ok(o: &Output, what: &str) -> String {
    assert!(
        o.status.success(),
        "{what}: {}\n{}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The static binary, built (or found up to date) once per test run.
fn static_binary() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let mut c = Command::new(root().join("packaging/build-static.sh"));
        c.env("CARGO", env!("CARGO"));
        let out = ok(
            &run_for(c, Duration::from_secs(45 * 60)),
            "packaging/build-static.sh",
        );
        root().join(out.trim())
    })
}

/// A containers.conf this sandbox runs containers with: crun's and runc's default
/// RLIMIT_NOFILE cannot be set here.
fn containers_conf() -> &'static Path {
    static CONF: OnceLock<PathBuf> = OnceLock::new();
    CONF.get_or_init(|| {
        let p =
            std::env::temp_dir().join(format!("reconfd-containers-{}.conf", std::process::id()));
        std::fs::write(&p, "[containers]\ndefault_ulimits = []\n").unwrap();
        p
    })
}

/// `podman` with the options this sandbox needs.
fn podman() -> Command {
    let mut c = Command::new("podman");
    c.env("CONTAINERS_CONF", containers_conf()).args([
        "--runtime",
        "runc",
        "--cgroup-manager=cgroupfs",
    ]);
    c
}

/// The image, built from the static binary and loaded into podman once per test run.
fn image() -> &'static str {
    static IMAGE: OnceLock<String> = OnceLock::new();
    IMAGE.get_or_init(|| {
        let mut c = Command::new(root().join("packaging/build-image.sh"));
        c.env("BIN", static_binary());
        let archive = ok(
            &run_for(c, Duration::from_secs(10 * 60)),
            "packaging/build-image.sh",
        );
        let mut load = podman();
        load.args(["load", "--quiet", "--input"])
            .arg(root().join(archive.trim()));
        let loaded = ok(&run_for(load, Duration::from_secs(120)), "podman load");
        let name = format!("localhost/reconfd:{}", env!("CARGO_PKG_VERSION"));
        assert!(loaded.contains(&name), "podman load said: {loaded}");
        name
    })
}

fn container_prerequisites() -> Result<(), ()> {
    require(is_root(), "running containers needs root")?;
    for tool in ["podman", "buildah", "runc"] {
        require(
            have(tool),
            &format!("{tool} is not installed (apt-get install podman buildah runc)"),
        )?;
    }
    require(
        Path::new("/bin/busybox").exists(),
        "busybox-static is not installed",
    )
}

#[test]
fn static_binary_is_static_renders_with_once_and_sets_owner_by_name() {
    if require(is_root(), "installing a file owned by nobody needs root").is_err() {
        return;
    }
    let bin = static_binary();
    let ldd = Command::new("ldd").arg(bin).output().unwrap();
    let said =
        String::from_utf8_lossy(&ldd.stdout).into_owned() + &String::from_utf8_lossy(&ldd.stderr);
    // A static-pie executable (what rustc makes with crt-static, keeping ASLR) is "statically
    // linked" to ldd; a non-PIE one "not a dynamic executable". Either way no library.
    assert!(
        (said.contains("statically linked") || said.contains("not a dynamic executable"))
            && !said.contains("=>"),
        "ldd: {said}"
    );

    let etcd = Etcd::start();
    etcd.put("/services/apache/a", "10.0.0.1:80");
    let t = Tree::new();
    t.template(
        "up.tera",
        "{% for s in getvs(pattern=\"/services/apache/*\") %}server {{ s }};\n{% endfor %}",
    );
    t.resource(
        "up",
        "[template]\nsrc = \"up.tera\"\ndest = \"@OUT@/up.conf\"\nkeys = [\"/services/apache\"]\nowner = \"nobody\"\ngroup = \"nogroup\"\nmode = \"0640\"\n",
    );
    // Names come from /etc/passwd and /etc/group: the static binary has no NSS.
    let uid = reconfd::users::id_in_file(Path::new("/etc/passwd"), "nobody").unwrap();
    let gid = reconfd::users::id_in_file(Path::new("/etc/group"), "nogroup").unwrap();
    let mut c = Command::new(bin);
    c.arg("once")
        .arg("--confdir")
        .arg(t.confdir())
        .args(["--endpoint", &etcd.endpoint])
        .env("RECONFD_CONFIG", "/dev/null");
    ok(&run_for(c, Duration::from_secs(60)), "static reconfd once");
    assert_eq!(t.read("up.conf"), "server 10.0.0.1:80;\n");
    let meta = std::fs::metadata(t.out().join("up.conf")).unwrap();
    assert_eq!(
        (meta.uid(), meta.gid(), meta.mode() & 0o7777),
        (uid, gid, 0o640)
    );

    // A name that is nowhere in the files is refused, saying where it was looked up.
    t.resource(
        "up",
        "[template]\nsrc = \"up.tera\"\ndest = \"@OUT@/up.conf\"\nkeys = [\"/services/apache\"]\nowner = \"no-such-user-xyz\"\n",
    );
    let mut c = Command::new(bin);
    c.arg("check")
        .arg("--confdir")
        .arg(t.confdir())
        .env("RECONFD_CONFIG", "/dev/null");
    let o = run_for(c, Duration::from_secs(60));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(78), "{err}");
    assert!(
        err.contains("owner \"no-such-user-xyz\" does not exist in /etc/passwd and /etc/group (this reconfd is static"),
        "{err}"
    );
}

#[test]
fn image_is_one_scratch_layer_with_entrypoint_user_and_labels() {
    if container_prerequisites().is_err() {
        return;
    }
    let image = image();
    let mut c = podman();
    c.args(["image", "inspect", image]);
    let text = ok(&run_for(c, Duration::from_secs(60)), "podman image inspect");
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let i = &v[0];
    assert_eq!(
        i["RootFS"]["Layers"].as_array().map(Vec::len),
        Some(1),
        "one layer, no base image: {text}"
    );
    let config = &i["Config"];
    assert_eq!(
        config["Entrypoint"],
        serde_json::json!(["/usr/bin/reconfd", "run"])
    );
    assert_eq!(config["User"], "65534:65534");
    let labels = &config["Labels"];
    assert_eq!(
        labels["org.opencontainers.image.version"],
        env!("CARGO_PKG_VERSION")
    );
    assert_eq!(
        labels["org.opencontainers.image.licenses"],
        "Apache-2.0 AND GPL-2.0-only"
    );
    assert!(
        labels["org.opencontainers.image.source"]
            .as_str()
            .is_some_and(|s| !s.is_empty()),
        "{labels}"
    );

    // Exactly these files: the binary, busybox and its applets, an empty /etc/reconfd, /tmp.
    let name = format!("reconfd-inspect-{}", std::process::id());
    let mut c = podman();
    c.args(["create", "--name", &name, image]);
    ok(&run_for(c, Duration::from_secs(60)), "podman create");
    let mut c = podman();
    c.args(["export", &name]);
    let tar = run_for(c, Duration::from_secs(60));
    let mut c = podman();
    c.args(["rm", "--force", &name]);
    let _ = run_for(c, Duration::from_secs(60));
    let tar = tar.stdout;
    let mut list = Command::new("tar")
        .arg("-t")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = list.stdin.take().unwrap();
    let writer = std::thread::spawn(move || std::io::Write::write_all(&mut stdin, &tar));
    let mut listing = String::new();
    list.stdout
        .take()
        .unwrap()
        .read_to_string(&mut listing)
        .unwrap();
    writer.join().unwrap().unwrap();
    list.wait().unwrap();
    let mut files: Vec<&str> = listing
        .lines()
        .map(|l| l.trim_start_matches("./").trim_end_matches('/'))
        .filter(|l| !l.is_empty() && *l != ".")
        .collect();
    files.sort();
    for want in [
        "usr/bin/reconfd",
        "bin/busybox",
        "bin/sh",
        "bin/kill",
        "bin/cat",
        "etc/reconfd",
        "tmp",
    ] {
        assert!(files.contains(&want), "{want} missing from {files:?}");
    }
    // podman adds mount points of its own (/etc/hosts, /run, /dev, /proc, /sys, ...) to a
    // container's root; nothing else may be there.
    let allowed = |f: &str| {
        f.starts_with("bin/")
            || f.starts_with("usr")
            || f.starts_with("etc")
            || f.starts_with("run")
            || ["bin", "tmp", "dev", "proc", "sys"].contains(&f)
    };
    let extra: Vec<&&str> = files.iter().filter(|f| !allowed(f)).collect();
    assert!(extra.is_empty(), "unexpected files in the image: {extra:?}");
}

/// A datagram socket the container's reconfd notifies through (`--sdnotify=container`).
struct NotifySocket {
    sock: UnixDatagram,
    path: PathBuf,
    _dir: tempfile::TempDir,
    seen: Vec<String>,
}

impl NotifySocket {
    fn bind() -> NotifySocket {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let sock = UnixDatagram::bind(&path).unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        NotifySocket {
            sock,
            path,
            _dir: dir,
            seen: Vec::new(),
        }
    }

    /// Waits until a message has a line `line`; the messages so far are in the panic.
    fn wait_line(&mut self, line: &str, timeout: Duration, log: &dyn Fn() -> String) {
        let deadline = Instant::now() + timeout;
        let mut buf = vec![0u8; 4096];
        loop {
            if self.seen.iter().any(|m| m.lines().any(|l| l == line)) {
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "no {line:?} within {timeout:?}; got {:?}; container log:\n{}",
                    self.seen,
                    log()
                );
            }
            if let Ok(n) = self.sock.recv(&mut buf) {
                self.seen
                    .push(String::from_utf8_lossy(&buf[..n]).into_owned());
            }
        }
    }
}

/// A real nginx serving `include`d `site.conf` from the directory reconfd renders into; its
/// PID file in a directory of its own that the container mounts.
struct Nginx {
    child: Child,
    dir: tempfile::TempDir,
    port: u16,
}

impl Nginx {
    fn start(site_dir: &Path) -> Nginx {
        let dir = tempfile::tempdir().unwrap();
        let port = util::free_port();
        std::fs::create_dir(dir.path().join("run")).unwrap();
        std::fs::write(
            site_dir.join("site.conf"),
            format!("server {{ listen 127.0.0.1:{port}; return 200 \"none\\n\"; }}\n"),
        )
        .unwrap();
        let conf = dir.path().join("nginx.conf");
        std::fs::write(
            &conf,
            format!(
                "pid {run}/nginx.pid;\nerror_log {d}/error.log notice;\nevents {{}}\nhttp {{\n  access_log off;\n  client_body_temp_path {d}/tmp;\n  proxy_temp_path {d}/tmp;\n  fastcgi_temp_path {d}/tmp;\n  uwsgi_temp_path {d}/tmp;\n  scgi_temp_path {d}/tmp;\n  include {site}/site.conf;\n}}\n",
                run = dir.path().join("run").display(),
                d = dir.path().display(),
                site = site_dir.display(),
            ),
        )
        .unwrap();
        let child = Command::new("/usr/sbin/nginx")
            .arg("-c")
            .arg(&conf)
            .args(["-g", "daemon off;"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot start nginx");
        let n = Nginx { child, dir, port };
        wait_for(Duration::from_secs(20), "nginx to answer", || {
            n.get().filter(|b| b == "none\n")
        });
        n
    }

    fn run_dir(&self) -> PathBuf {
        self.dir.path().join("run")
    }

    fn get(&self) -> Option<String> {
        use std::io::Write;
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        write!(s, "GET / HTTP/1.0\r\nHost: x\r\n\r\n").ok()?;
        let mut out = String::new();
        s.read_to_string(&mut out).ok()?;
        out.split("\r\n\r\n").nth(1).map(str::to_owned)
    }

    fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `podman run` in the foreground; dropping it removes the container.
struct Container {
    name: String,
    child: Child,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Container {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        if !self.name.is_empty() {
            let mut c = podman();
            c.args(["rm", "--force", "--ignore", &self.name])
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            let _ = c.status();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The image against a real etcd on the host network: renders into a mounted host
/// directory, follows a change, reloads the host's nginx through its PID file (`--pid=host`),
/// says READY=1 through the socket `--sdnotify=container` hands in, and stops cleanly on
/// SIGTERM (`podman stop`).
#[test]
fn container_renders_follows_reloads_host_nginx_notifies_and_stops() {
    if container_prerequisites().is_err() {
        return;
    }
    if require(
        Path::new("/usr/sbin/nginx").exists(),
        "nginx is not installed",
    )
    .is_err()
    {
        return;
    }
    let image = image();
    let etcd = Etcd::start();
    etcd.put("/app/greeting", "hello");
    let t = Tree::new();
    let nginx = Nginx::start(&t.out());
    std::fs::write(
        t.confdir().join("reconfd.toml"),
        format!(
            "[etcd]\nendpoints = [\"{}\"]\n[batch]\ndebounce = \"0\"\n",
            etcd.endpoint
        ),
    )
    .unwrap();
    t.template(
        "site.tera",
        &format!(
            "server {{ listen 127.0.0.1:{}; return 200 \"{{{{ getv(key=\"/app/greeting\") }}}}\\n\"; }}\n",
            nginx.port
        ),
    );
    // Paths as the container sees them.
    std::fs::write(
        t.confdir().join("conf.d/site.toml"),
        "[template]\nsrc = \"site.tera\"\ndest = \"/srv/out/site.conf\"\nkeys = [\"/app\"]\nreload_cmd = 'kill -HUP \"$(cat /run/nginx/nginx.pid)\"'\n",
    )
    .unwrap();

    let mut notify = NotifySocket::bind();
    let name = format!("reconfd-test-{}", std::process::id());
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("podman.log");
    let mut c = podman();
    c.args(["run", "--rm", "--name", &name])
        .args(["--sdnotify=container", "--network=host", "--pid=host"])
        .args(["--user=0:0"])
        .arg(format!(
            "--volume={}:/etc/reconfd:ro",
            t.confdir().display()
        ))
        .arg(format!("--volume={}:/srv/out", t.out().display()))
        .arg(format!(
            "--volume={}:/run/nginx:ro",
            nginx.run_dir().display()
        ))
        .arg(image)
        .env("NOTIFY_SOCKET", &notify.path)
        .stdin(Stdio::null());
    let file = std::fs::File::create(&log).unwrap();
    c.stdout(file.try_clone().unwrap()).stderr(file);
    let mut container = Container {
        name: name.clone(),
        child: c.spawn().expect("cannot run podman"),
        log: log.clone(),
        _dir: dir,
    };
    let clog = || std::fs::read_to_string(&log).unwrap_or_default();
    notify.wait_line("READY=1", Duration::from_secs(60), &clog);
    // READY=1 comes after the first reconcile: the file is in the host's directory and
    // nginx has been told.
    assert_eq!(
        t.read("site.conf"),
        format!(
            "server {{ listen 127.0.0.1:{}; return 200 \"hello\\n\"; }}\n",
            nginx.port
        )
    );
    wait_for(
        Duration::from_secs(20),
        "nginx to serve the rendered file",
        || nginx.get().filter(|b| b == "hello\n"),
    );

    etcd.put("/app/greeting", "changed");
    wait_for(
        Duration::from_secs(30),
        "nginx to serve the change after reconfd's reload",
        || nginx.get().filter(|b| b == "changed\n"),
    );
    assert!(
        nginx.error_log().contains("signal 1 (SIGHUP) received"),
        "{}",
        nginx.error_log()
    );

    let mut stop = podman();
    stop.args(["stop", "--time", "30", &name]);
    ok(&run_for(stop, Duration::from_secs(60)), "podman stop");
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = container.child.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "podman run did not exit: {}",
            container.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        status.success(),
        "reconfd did not exit 0 on SIGTERM: {status}\n{}",
        container.log()
    );
    // runc (podman 4.3's path here) forwards READY=1 from the container and nothing after it,
    // so STATUS=, STOPPING=1 and WATCHDOG=1 do not reach the socket: docs/coreos.md.
    assert_eq!(t.out_files(), vec!["site.conf"], "no staged file left");
    container.name.clear();
}

/// The container unit verifies, and it and the Quadlet file run the image the way the test
/// above does: notify from the container, host network and PID namespace, the host's
/// identity for the specifiers, the watchdog interval passed in.
#[test]
fn container_unit_and_quadlet_agree_and_verify() {
    let unit = std::fs::read_to_string(root().join("systemd/reconfd-container.service")).unwrap();
    let exec: String = unit
        .split("ExecStart=")
        .nth(1)
        .unwrap()
        .lines()
        .take_while(|l| !l.starts_with("ExecReload="))
        .collect::<Vec<_>>()
        .join(" ");
    for want in [
        "--sdnotify=container",
        "--cgroups=split",
        "--network=host",
        "--pid=host",
        "--env=RECONFD_HOSTNAME=%H",
        "--env=RECONFD_MACHINE_ID=%m",
        "--volume=/etc/reconfd:/etc/reconfd:ro",
        "--volume=/etc/passwd:/etc/passwd:ro",
    ] {
        assert!(exec.contains(want), "{want} not in ExecStart: {exec}");
    }
    // No watchdog: runc forwards only READY=1 from the container (docs/coreos.md).
    assert!(
        !unit.lines().any(|l| l.starts_with("WatchdogSec=")),
        "the unit must not arm a watchdog"
    );
    for want in [
        "Type=notify\n",
        "NotifyAccess=all\n",
        "RestartPreventExitStatus=78\n",
    ] {
        assert!(unit.contains(want), "{want} not in the unit");
    }
    let quadlet =
        std::fs::read_to_string(root().join("packaging/coreos/reconfd.container")).unwrap();
    for want in [
        "Notify=true\n",
        "Network=host\n",
        "--pid=host",
        "Environment=RECONFD_HOSTNAME=%H RECONFD_MACHINE_ID=%m\n",
        "Volume=/etc/reconfd:/etc/reconfd:ro\n",
        "Volume=/etc/passwd:/etc/passwd:ro\n",
    ] {
        assert!(quadlet.contains(want), "{want} not in the Quadlet file");
    }
    let Ok(o) = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(root().join("systemd/reconfd-container.service"))
        .output()
    else {
        let _ = require(
            false,
            "systemd-analyze is not installed (apt-get install systemd)",
        );
        return;
    };
    assert!(
        o.status.success(),
        "systemd-analyze verify: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}
