//! Failover across the members of a real three-member etcd cluster on loopback: the daemon
//! follows one member; when that member dies or hangs, it moves to another and resumes the
//! watch from its last revision + 1 without missing a change.

mod util;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use base64::Engine as _;
use nix::sys::signal::Signal;
use nix::unistd::Pid;
use util::{free_port, wait_for, Daemon, Tree};

struct Member {
    name: String,
    port: u16,
    peer: u16,
    /// The HTTPS client listener beside the plain one, used when the cluster serves TLS.
    tls_port: u16,
    child: Option<Child>,
}

/// One cluster at a time in this binary: three clusters of three members on a two-core
/// machine starve each other's elections, and the failover figures mean more on a quiet one.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Three etcd members on free loopback ports, stopped on drop.
struct Cluster {
    dir: tempfile::TempDir,
    members: Vec<Member>,
    /// The server certificate and key every member's HTTPS listener uses (one for all: each
    /// is 127.0.0.1), `None` for plain HTTP only.
    tls: Option<(PathBuf, PathBuf)>,
    /// root's password once [`Cluster::enable_auth`] ran: the helpers then log in as root.
    root_password: Option<String>,
    /// Released after the members are stopped (fields drop after `Drop::drop`).
    _turn: MutexGuard<'static, ()>,
}

impl Cluster {
    /// Starts three members and waits until each answers a read. Forming the cluster is the
    /// set-up, not what is tested: if it fails (a member exits, say because a port was taken
    /// by another process in between), it is tried once more on fresh ports, with the logs
    /// of the failed try printed.
    fn start() -> Cluster {
        Cluster::start_with(None)
    }

    /// As [`Cluster::start`], each member also serving HTTPS with `tls` (certificate, key);
    /// the tests' own requests stay on plain HTTP.
    fn start_with(tls: Option<(PathBuf, PathBuf)>) -> Cluster {
        let turn = || ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
        let mut c = Cluster::form(turn(), tls.clone());
        match c.wait_all_ready() {
            Ok(()) => c,
            Err(why) => {
                eprintln!("etcd cluster did not form, trying once more on fresh ports: {why}");
                drop(c);
                let mut c = Cluster::form(turn(), tls);
                c.wait_all_ready().unwrap_or_else(|why| panic!("{why}"));
                c
            }
        }
    }

    fn form(turn: MutexGuard<'static, ()>, tls: Option<(PathBuf, PathBuf)>) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let members: Vec<Member> = ["m0", "m1", "m2"]
            .iter()
            .map(|n| Member {
                name: n.to_string(),
                port: free_port(),
                peer: free_port(),
                tls_port: free_port(),
                child: None,
            })
            .collect();
        let mut c = Cluster {
            dir,
            members,
            tls,
            root_password: None,
            _turn: turn,
        };
        for i in 0..3 {
            c.spawn(i);
        }
        c
    }

    fn wait_all_ready(&mut self) -> Result<(), String> {
        (0..3).try_for_each(|i| self.try_ready(i))
    }

    fn initial_cluster(&self) -> String {
        self.members
            .iter()
            .map(|m| format!("{}=http://127.0.0.1:{}", m.name, m.peer))
            .collect::<Vec<_>>()
            .join(",")
    }

    fn spawn(&mut self, i: usize) {
        let ic = self.initial_cluster();
        let m = &self.members[i];
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join(format!("{}.log", m.name)))
            .unwrap();
        let mut client = format!("http://127.0.0.1:{}", m.port);
        let mut tls_args = Vec::new();
        if let Some((cert, key)) = &self.tls {
            client += &format!(",https://127.0.0.1:{}", m.tls_port);
            tls_args = vec![
                "--cert-file".into(),
                cert.clone(),
                "--key-file".into(),
                key.clone(),
            ];
        }
        let peer = format!("http://127.0.0.1:{}", m.peer);
        let child = Command::new("etcd")
            .args(tls_args)
            .args(["--name", &m.name, "--data-dir"])
            .arg(self.dir.path().join(&m.name))
            .args([
                "--listen-client-urls",
                &client,
                "--advertise-client-urls",
                &client,
            ])
            .args([
                "--listen-peer-urls",
                &peer,
                "--initial-advertise-peer-urls",
                &peer,
            ])
            .args(["--initial-cluster", &ic, "--initial-cluster-state", "new"])
            .args(["--heartbeat-interval", "50", "--election-timeout", "500"])
            .args(["--log-level", "warn", "--logger", "zap"])
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("cannot start etcd (apt-get install etcd-server)");
        self.members[i].child = Some(child);
    }

    fn endpoint(&self, i: usize) -> String {
        format!("http://127.0.0.1:{}", self.members[i].port)
    }

    /// The URL a daemon is given for member `i`: HTTPS when the cluster serves TLS.
    fn daemon_endpoint(&self, i: usize) -> String {
        match self.tls {
            Some(_) => format!("https://127.0.0.1:{}", self.members[i].tls_port),
            None => self.endpoint(i),
        }
    }

    /// POSTs to member `i`'s JSON gateway; `None` unless it answers 200. Once auth is on,
    /// each call logs in as root first, at that member (a restarted member forgets tokens).
    fn post(&self, i: usize, path: &str, body: &str) -> Option<String> {
        let auth = match &self.root_password {
            Some(pw) => {
                let login = format!(r#"{{"name":"root","password":"{pw}"}}"#);
                util::token_header(&self.raw_post(i, "/v3/auth/authenticate", &login, "")?)?
            }
            None => String::new(),
        };
        self.raw_post(i, path, body, &auth)
    }

    fn raw_post(&self, i: usize, path: &str, body: &str, headers: &str) -> Option<String> {
        let mut s = TcpStream::connect(("127.0.0.1", self.members[i].port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
        write!(
            s,
            "POST {path} HTTP/1.1\r\nHost: x\r\n{headers}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .ok()?;
        let mut out = String::new();
        s.read_to_string(&mut out).ok()?;
        out.starts_with("HTTP/1.1 200").then_some(out)
    }

    fn wait_ready(&mut self, i: usize) {
        self.try_ready(i).unwrap_or_else(|why| panic!("{why}"));
    }

    /// Waits (at most 30 s) until member `i` answers a read; fails at once when it exits.
    /// The error carries every member's log.
    fn try_ready(&mut self, i: usize) -> Result<(), String> {
        let timeout = Duration::from_secs(30);
        let deadline = Instant::now() + timeout;
        loop {
            let answered = self
                .post(i, "/v3/kv/range", r#"{"key":"AA=="}"#)
                .is_some_and(|b| b.contains("header"));
            if answered {
                return Ok(());
            }
            let exited = match self.members[i].child.as_mut() {
                Some(c) => c.try_wait().unwrap(),
                None => None,
            };
            if let Some(status) = exited {
                return Err(format!(
                    "etcd member {} exited ({status}) before answering\n{}",
                    self.members[i].name,
                    self.logs()
                ));
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "etcd member {} did not answer within {timeout:?}\n{}",
                    self.members[i].name,
                    self.logs()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Every member's log, for a failure message.
    fn logs(&self) -> String {
        self.members
            .iter()
            .map(|m| {
                let log = std::fs::read_to_string(self.dir.path().join(format!("{}.log", m.name)));
                format!(
                    "--- {} (client {}, peer {}):\n{}",
                    m.name,
                    m.port,
                    m.peer,
                    log.unwrap_or_default()
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Writes through member `i`, retrying (bounded) while the cluster elects a leader.
    fn put(&self, i: usize, key: &str, value: &str) {
        let b = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let body = format!(r#"{{"key":"{}","value":"{}"}}"#, b(key), b(value));
        wait_for(Duration::from_secs(30), "a put through a survivor", || {
            self.post(i, "/v3/kv/put", &body)
        });
    }

    /// Turns authentication on as docs/operations.md does (user root, `auth enable`) and adds
    /// user `name`, whose role may read `prefix` only.
    fn enable_auth(&mut self, root_password: &str, name: &str, password: &str, prefix: &str) {
        // Through one member, as an operator points etcdctl at one.
        let endpoint = self.endpoint(0);
        let ctl = |args: &[&str], stdin: &str, as_root: bool| {
            util::etcdctl_at(&endpoint, as_root.then_some(root_password), args, stdin);
        };
        let root = format!("{root_password}\n");
        ctl(
            &["user", "add", "root", "--interactive=false"],
            &root,
            false,
        );
        ctl(&["auth", "enable"], "", false);
        ctl(&["role", "add", "reader"], "", true);
        ctl(
            &[
                "role",
                "grant-permission",
                "reader",
                "--prefix=true",
                "read",
                prefix,
            ],
            "",
            true,
        );
        ctl(
            &["user", "add", name, "--interactive=false"],
            &format!("{password}\n"),
            true,
        );
        ctl(&["user", "grant-role", name, "reader"], "", true);
        self.root_password = Some(root_password.to_owned());
    }

    fn pid(&self, i: usize) -> Pid {
        Pid::from_raw(self.members[i].child.as_ref().unwrap().id() as i32)
    }

    fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.members[i].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn restart(&mut self, i: usize) {
        self.kill(i);
        self.spawn(i);
        self.wait_ready(i);
    }

    fn index_of(&self, endpoint: &str) -> usize {
        (0..3)
            .find(|&i| self.endpoint(i) == endpoint)
            .unwrap_or_else(|| panic!("unknown endpoint {endpoint}"))
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..3 {
            if let Some(c) = &self.members[i].child {
                let _ = nix::sys::signal::kill(Pid::from_raw(c.id() as i32), Signal::SIGCONT);
            }
            self.kill(i);
        }
    }
}

fn setup(cluster: &Cluster) -> (Tree, Daemon) {
    let t = Tree::new();
    t.template(
        "up.tera",
        "{% for s in getvs(pattern=\"/services/apache/*\") %}server {{ s }};\n{% endfor %}",
    );
    t.resource(
        "up",
        "[template]\nsrc = \"up.tera\"\ndest = \"@OUT@/up.conf\"\nkeys = [\"/services/apache\"]\ndebounce = \"0\"\nreload_limit = \"none\"\n",
    );
    cluster.put(0, "/services/apache/a", "10.0.0.1:80");
    let mut cmd = util::reconfd();
    cmd.args(["run", "--confdir"]).arg(t.confdir());
    for i in 0..3 {
        cmd.args(["--endpoint", &cluster.endpoint(i)]);
    }
    let d = Daemon::spawn(cmd);
    d.wait_ready();
    // READY comes after the first reconcile, which may finish before the follower has
    // opened its watch and said which member it follows.
    d.wait_log(Duration::from_secs(20), "following etcd", 1);
    (t, d)
}

/// The endpoint the daemon says it follows now (the last "following etcd" line).
fn followed(d: &Daemon) -> String {
    let log = d.log();
    let line = log
        .lines()
        .rev()
        .find(|l| l.contains("following etcd"))
        .unwrap_or_else(|| panic!("no 'following etcd' in:\n{log}"));
    let at = line.find("reconfd.endpoint=").expect("endpoint field") + "reconfd.endpoint=".len();
    line[at..].split_whitespace().next().unwrap().to_owned()
}

fn wait_content(t: &Tree, d: &Daemon, want: &str, timeout: Duration) -> Duration {
    let started = Instant::now();
    let path = t.out().join("up.conf");
    wait_for(
        timeout,
        &format!("up.conf to hold {want:?}\n{}", d.log()),
        || {
            std::fs::read_to_string(Path::new(&path))
                .ok()
                .filter(|s| s.contains(want))
        },
    );
    started.elapsed()
}

#[test]
fn killing_the_followed_member_loses_no_change() {
    let mut cluster = Cluster::start();
    let (t, d) = setup(&cluster);
    let rounds: usize = std::env::var("HA_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let mut times = Vec::new();
    for round in 0..rounds {
        let victim = cluster.index_of(&followed(&d));
        let survivor = (victim + 1) % 3;
        let before = d.log_count("following etcd");
        let killed = Instant::now();
        cluster.kill(victim);
        // A change made while the daemon's member is gone, and one more after it moved.
        cluster.put(
            survivor,
            "/services/apache/b",
            &format!("10.0.1.{round}:80"),
        );
        let written = Instant::now();
        cluster.put(
            survivor,
            &format!("/services/apache/r{round}"),
            "10.0.2.1:80",
        );
        wait_content(
            &t,
            &d,
            &format!("server 10.0.1.{round}:80;"),
            Duration::from_secs(30),
        );
        times.push((killed.elapsed(), written.elapsed(), written - killed));
        // The second write of the round must arrive too (no change missed across the switch).
        let path = t.out().join("up.conf");
        wait_for(
            Duration::from_secs(10),
            &format!("round {round}'s second write\n{}", d.log()),
            || {
                let text = std::fs::read_to_string(&path).ok()?;
                (text.matches("10.0.2.1:80").count() == round + 1).then_some(())
            },
        );
        assert!(
            d.log_count("following etcd") > before,
            "no switch logged:\n{}",
            d.log()
        );
        cluster.restart(victim);
    }
    let stats = |mut v: Vec<Duration>| {
        v.sort();
        format!("p50 {:?} max {:?}", v[v.len() / 2], v[v.len() - 1])
    };
    eprintln!(
        "failover: {rounds} rounds; kill → change applied {}; of which the write's own wait for a leader {}; write returned → applied {}",
        stats(times.iter().map(|t| t.0).collect()),
        stats(times.iter().map(|t| t.2).collect()),
        stats(times.iter().map(|t| t.1).collect()),
    );
}

#[test]
fn a_hung_member_is_left_within_seconds() {
    let cluster = Cluster::start();
    let (t, d) = setup(&cluster);
    let victim = cluster.index_of(&followed(&d));
    let survivor = (victim + 1) % 3;
    nix::sys::signal::kill(cluster.pid(victim), Signal::SIGSTOP).unwrap();
    cluster.put(survivor, "/services/apache/hung", "10.0.9.9:80");
    // Keep-alive (5 s + 5 s) notices the silent member; then the next member is followed.
    let took = wait_content(&t, &d, "server 10.0.9.9:80;", Duration::from_secs(40));
    nix::sys::signal::kill(cluster.pid(victim), Signal::SIGCONT).unwrap();
    assert_ne!(followed(&d), cluster.endpoint(victim), "{}", d.log());
    // Said as what it is, not as the h2 error it surfaces as.
    assert!(d.log().contains("keep-alive timeout"), "{}", d.log());
    eprintln!("hung member: change applied {took:?} after the write");
}

/// A member that lost its leader (the other two stopped) cannot see new writes; etcd ends the
/// watch of a client that requires a leader, so the daemon reports etcd unreachable instead
/// of quietly following a member cut off from the cluster, and follows again once the
/// cluster has a leader.
#[test]
fn a_member_without_a_leader_is_not_followed() {
    let cluster = Cluster::start();
    let (t, d) = setup(&cluster);
    let kept = cluster.index_of(&followed(&d));
    let others: Vec<usize> = (0..3).filter(|&i| i != kept).collect();
    for &i in &others {
        nix::sys::signal::kill(cluster.pid(i), Signal::SIGSTOP).unwrap();
    }
    d.wait_log(
        Duration::from_secs(40),
        "no etcd endpoint can be followed",
        1,
    );
    assert!(d.log().contains("no leader"), "{}", d.log());
    // The leaderless member accepts connections: that is not "reachable again" (the sleep
    // proves, for 8 s of retries, that no such line comes).
    std::thread::sleep(Duration::from_secs(8));
    assert_eq!(d.log_count("etcd reachable again"), 0, "{}", d.log());
    for &i in &others {
        nix::sys::signal::kill(cluster.pid(i), Signal::SIGCONT).unwrap();
    }
    cluster.put(others[0], "/services/apache/led", "10.0.4.4:80");
    wait_content(&t, &d, "server 10.0.4.4:80;", Duration::from_secs(40));
    d.wait_log(Duration::from_secs(10), "etcd reachable again", 1);
    // One recovery per outage, never one per retry. A resumed member still believes in the
    // leader it knew before the stop until its election timeout, so it may accept a watch and
    // end it with "no leader" moments later: a second, real outage and recovery (seen in CI).
    let log = d.log();
    let mut up = false;
    for line in log.lines() {
        if line.contains("no etcd endpoint can be followed") {
            up = false;
        } else if line.contains("etcd reachable again") {
            assert!(!up, "a recovery without an outage before it:\n{log}");
            up = true;
        }
    }
}

#[test]
fn all_members_down_then_one_back_recovers() {
    let mut cluster = Cluster::start();
    let (t, d) = setup(&cluster);
    for i in 0..3 {
        cluster.kill(i);
    }
    d.wait_log(
        Duration::from_secs(30),
        "no etcd endpoint can be followed",
        1,
    );
    assert_eq!(
        t.read("up.conf"),
        "server 10.0.0.1:80;\n",
        "the last good file must stay"
    );
    for i in 0..3 {
        cluster.spawn(i);
    }
    for i in 0..3 {
        cluster.wait_ready(i);
    }
    cluster.put(1, "/services/apache/back", "10.0.3.3:80");
    wait_content(&t, &d, "server 10.0.3.3:80;", Duration::from_secs(40));
    d.wait_log(Duration::from_secs(10), "etcd reachable again", 1);
    // One "unreachable" line per state change, not one per retry.
    assert!(
        d.log_count("no etcd endpoint can be followed") <= 3,
        "{}",
        d.log()
    );
}

/// After a failover the daemon goes back to the first-listed (preferred) member once it is
/// healthy again, not before the minimum stay (`[etcd] prefer_first_after`, 3 s here), and
/// misses no change across either switch. While the preferred member is down, it is probed at
/// most once per stay (debug lines), not reconnected to in a loop.
#[test]
fn returns_to_the_preferred_member_after_the_minimum_stay() {
    returns_to_the_preferred_member(false);
}

/// The same over TLS with authentication on and a user that may read the watched prefix
/// only: the probe connects with the daemon's CA, logs in as that user, and its status call
/// is allowed.
#[test]
fn returns_to_the_preferred_member_with_auth_and_tls() {
    returns_to_the_preferred_member(true);
}

const READER_PREFIX: &str = "/services/";

fn returns_to_the_preferred_member(secure: bool) {
    const STAY: Duration = Duration::from_secs(3);
    let pki = util::Pki::new();
    let tls = secure.then(|| {
        pki.ca("ca");
        let ext = "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth";
        pki.issue("ca", "server", util::KeyKind::EcSec1, ext)
    });
    let mut cluster = Cluster::start_with(tls);
    let t = Tree::new();
    t.template(
        "up.tera",
        "{% for s in getvs(pattern=\"/services/apache/*\") %}server {{ s }};\n{% endfor %}",
    );
    t.resource(
        "up",
        "[template]\nsrc = \"up.tera\"\ndest = \"@OUT@/up.conf\"\nkeys = [\"/services/apache\"]\ndebounce = \"0\"\nreload_limit = \"none\"\n",
    );
    let config = t.root.path().join("reconfd.toml");
    let mut etcd = "[etcd]\nprefer_first_after = \"3s\"\n".to_owned();
    cluster.put(0, "/services/apache/a", "10.0.0.1:80");
    if secure {
        cluster.enable_auth(
            "root-3b8e-sekrit",
            "reconfd",
            "Pw-5a1f-sekrit",
            READER_PREFIX,
        );
        let pw = t.root.path().join("pw");
        std::fs::write(&pw, "Pw-5a1f-sekrit\n").unwrap();
        std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o600)).unwrap();
        etcd += &format!(
            "username = \"reconfd\"\npassword_file = \"{}\"\n",
            pw.display()
        );
        etcd += &format!(
            "[etcd.tls]\nca_file = \"{}\"\n",
            pki.path("ca.pem").display()
        );
    }
    std::fs::write(&config, etcd).unwrap();
    let mut cmd = util::reconfd();
    cmd.args([
        "run",
        "--log-level",
        "info,reconfd::etcd::watch=debug",
        "--config",
    ])
    .arg(&config)
    .arg("--confdir")
    .arg(t.confdir());
    for i in 0..3 {
        cmd.args(["--endpoint", &cluster.daemon_endpoint(i)]);
    }
    let d = Daemon::spawn(cmd);
    d.wait_ready();
    d.wait_log(Duration::from_secs(20), "following etcd", 1);
    assert_eq!(
        followed(&d),
        cluster.daemon_endpoint(0),
        "starts on the first"
    );

    cluster.kill(0);
    cluster.put(1, "/services/apache/b", "10.0.0.2:80");
    wait_content(&t, &d, "server 10.0.0.2:80;", Duration::from_secs(30));
    d.wait_log(Duration::from_secs(20), "following etcd", 2);
    let away = Instant::now();
    assert_ne!(followed(&d), cluster.daemon_endpoint(0));

    // Down for a few stays: probed, not returned to.
    std::thread::sleep(STAY * 3);
    assert_eq!(d.log_count("returning to it"), 0, "{}", d.log());
    let probes = d.log_count("probe: ");
    assert!(
        (1..=4).contains(&probes),
        "about one probe per stay while down, not a storm: {probes}\n{}",
        d.log()
    );

    cluster.restart(0);
    let restarted = Instant::now();
    d.wait_log(Duration::from_secs(30), "returning to it", 1);
    let back_after = restarted.elapsed();
    d.wait_log(Duration::from_secs(20), "following etcd", 3);
    assert_eq!(
        followed(&d),
        cluster.daemon_endpoint(0),
        "back on the first"
    );
    assert!(away.elapsed() >= STAY, "not before the minimum stay");
    cluster.put(2, "/services/apache/c", "10.0.0.3:80");
    wait_content(&t, &d, "server 10.0.0.3:80;", Duration::from_secs(30));
    assert!(t.read("up.conf").contains("server 10.0.0.2:80;"));
    assert!(!d.log().contains("Pw-5a1f-sekrit"), "{}", d.log());
    eprintln!("preferred member: back {back_after:?} after it was restarted (stay {STAY:?})");
}

/// With endpoints from DNS SRV, a round in which every known member failed asks DNS again:
/// the record moved to another member while the daemon ran, the only known member dies, and
/// the daemon follows the new one without missing the change made meanwhile.
#[test]
fn srv_is_asked_again_when_every_known_member_failed() {
    let mut cluster = Cluster::start();
    let port = |i: usize| -> u16 {
        cluster
            .endpoint(i)
            .rsplit(':')
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    let name = "_etcd-client._tcp.ha.test";
    let record = |port: u16| util::dns::Srv {
        name,
        target: "127.0.0.1",
        port,
        priority: 0,
        weight: 0,
    };
    let Some(mut dns) = util::dns::Dns::start(&[record(port(0))]) else {
        return;
    };
    let (p1, e1) = (port(1), cluster.endpoint(1));
    let t = Tree::new();
    t.template(
        "up.tera",
        "{% for s in getvs(pattern=\"/services/apache/*\") %}server {{ s }};\n{% endfor %}",
    );
    t.resource(
        "up",
        "[template]\nsrc = \"up.tera\"\ndest = \"@OUT@/up.conf\"\nkeys = [\"/services/apache\"]\ndebounce = \"0\"\nreload_limit = \"none\"\n",
    );
    let config = t.root.path().join("reconfd.toml");
    std::fs::write(
        &config,
        format!(
            "[etcd]\nsrv_domain = \"ha.test\"\nsrv_resolver = \"{}\"\nprefer_first_after = \"0\"\n",
            dns.addr
        ),
    )
    .unwrap();
    cluster.put(0, "/services/apache/a", "10.0.0.1:80");
    let mut cmd = util::reconfd();
    cmd.args(["run", "--config"])
        .arg(&config)
        .arg("--confdir")
        .arg(t.confdir());
    let d = Daemon::spawn(cmd);
    d.wait_ready();
    d.wait_log(Duration::from_secs(20), "following etcd", 1);
    assert_eq!(followed(&d), cluster.endpoint(0));

    dns.replace(&[record(p1)]);
    cluster.kill(0);
    cluster.put(1, "/services/apache/b", "10.0.0.2:80");
    wait_content(&t, &d, "server 10.0.0.2:80;", Duration::from_secs(30));
    d.wait_log(
        Duration::from_secs(10),
        "the etcd endpoints changed in DNS SRV",
        1,
    );
    d.wait_log(Duration::from_secs(10), "following etcd", 2);
    assert_eq!(followed(&d), e1);
}
