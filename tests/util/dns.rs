//! A real DNS server on loopback for discovery tests: Debian's `dnsmasq` answering only the
//! SRV records it is given (no upstream, no /etc/hosts), on a free 127.0.0.1 port.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{free_port, have_program, prerequisite, wait_for};

/// One SRV record: `name` lists `target:port` with `priority` and `weight`.
pub struct Srv<'a> {
    /// The record's name, e.g. `_etcd-client._tcp.example.test`.
    pub name: &'a str,
    /// The member's host.
    pub target: &'a str,
    /// The member's client port.
    pub port: u16,
    /// Lower first.
    pub priority: u16,
    /// Higher first among equal priorities.
    pub weight: u16,
}

/// A running dnsmasq; stopped on drop.
pub struct Dns {
    child: Child,
    dir: tempfile::TempDir,
    /// `127.0.0.1:PORT`, for `[etcd] srv_resolver`.
    pub addr: String,
}

const DNSMASQ: &str = "/usr/sbin/dnsmasq";

impl Dns {
    /// Starts dnsmasq serving `records` and waits (at most 10 s) until it is up; `None` when
    /// dnsmasq is missing outside CI (under CI=true that fails the test).
    pub fn start(records: &[Srv]) -> Option<Dns> {
        Self::start_on(free_port(), records)
    }

    /// Stops this server and starts one serving `records` instead, on the same address (as a
    /// DNS change an operator makes while reconfd runs).
    pub fn replace(&mut self, records: &[Srv]) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let port = self.addr.rsplit(':').next().unwrap().parse().unwrap();
        *self = Self::start_on(port, records).expect("dnsmasq was there a moment ago");
    }

    fn start_on(port: u16, records: &[Srv]) -> Option<Dns> {
        if !prerequisite(
            have_program(DNSMASQ) || have_program("dnsmasq"),
            "dnsmasq is not installed (apt-get install dnsmasq-base)",
        ) {
            return None;
        }
        let program = if Path::new(DNSMASQ).is_file() {
            DNSMASQ
        } else {
            "dnsmasq"
        };
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("dnsmasq.log");
        let mut cmd = Command::new(program);
        cmd.args([
            "--keep-in-foreground",
            "--conf-file=/dev/null",
            "--no-resolv",
            "--no-hosts",
            "--no-poll",
            "--bind-interfaces",
            "--listen-address=127.0.0.1",
            "--log-facility=-",
        ])
        .arg(format!("--port={port}"))
        .arg(format!("--pid-file={}", dir.path().join("pid").display()));
        if nix::unistd::getuid().is_root() {
            // dnsmasq would switch to "nobody", which may not read the temp directory.
            cmd.arg("--user=root");
        }
        for r in records {
            cmd.arg(format!(
                "--srv-host={},{},{},{},{}",
                r.name, r.target, r.port, r.priority, r.weight
            ));
        }
        let out = std::fs::File::create(&log).unwrap();
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("cannot start dnsmasq");
        let mut dns = Dns {
            child,
            dir,
            addr: format!("127.0.0.1:{port}"),
        };
        wait_for(Duration::from_secs(10), "dnsmasq to start", || {
            if let Ok(Some(status)) = dns.child.try_wait() {
                panic!("dnsmasq exited ({status}): {}", dns.log());
            }
            dns.log().contains("started").then_some(())
        });
        Some(dns)
    }

    /// What dnsmasq logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("dnsmasq.log")).unwrap_or_default()
    }
}

impl Drop for Dns {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
