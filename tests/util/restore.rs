//! etcd restored from a snapshot, or re-created empty, on the same address (same member name,
//! ports and cluster): what an operator does after a disaster, for the tests of what reconfd
//! does when the cluster behind its endpoints is not the one it followed.

use std::path::Path;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use nix::unistd::Pid;

use super::Etcd;

impl Etcd {
    /// Saves a snapshot of etcd's current state to `path` (`etcdctl snapshot save`).
    pub fn snapshot_save(&self, path: &Path) {
        self.etcdctl(&["snapshot", "save", &path.display().to_string()]);
    }

    /// Stops etcd, replaces its data directory with `snapshot` restored into a new one
    /// (`etcdctl snapshot restore`, same member name and peer URL, so the same cluster ID), or
    /// with nothing (a new empty cluster) when `None`, and starts it again on the same ports;
    /// returns once it answers.
    pub fn replace_data(&mut self, snapshot: Option<&Path>) {
        let pid = Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.child.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                let _ = self.child.kill();
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.wait();
        let data = self.dir.path().join("data");
        std::fs::remove_dir_all(&data).unwrap();
        if let Some(snapshot) = snapshot {
            let peer_url = format!("http://127.0.0.1:{}", self.peer);
            let out = std::process::Command::new("etcdctl")
                .env("ETCDCTL_API", "3")
                .args(["snapshot", "restore"])
                .arg(snapshot)
                .arg("--data-dir")
                .arg(&data)
                .args(["--name", "t", "--initial-cluster", &format!("t={peer_url}")])
                .args(["--initial-advertise-peer-urls", &peer_url])
                .output()
                .expect("cannot run etcdctl (Debian: apt-get install etcd-client)");
            assert!(
                out.status.success(),
                "etcdctl snapshot restore: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        self.respawn();
    }
}
