//! Test helpers for the actor and supervisor tests: paused time that moves only when a test
//! says so, real-time bounds on waits, scratch resources with real files and shell commands,
//! and a feed of snapshots.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::Prepared;
use crate::config::BatchSettings;
use crate::resource::Resource;
use crate::store::{KeyMap, Snapshot};
use crate::template::{EngineKind, Template};

/// How long, in real time, a test waits for something before it fails.
const REAL_BOUND: Duration = Duration::from_secs(20);

/// Holds tokio's paused clock still until dropped: time then moves only by
/// `tokio::time::advance`. Without it, the runtime auto-advances to the next timer whenever
/// it is idle, and it is idle while a `check_cmd` process runs, so the command's 30 s
/// timeout would fire at once. A running blocking task inhibits that auto-advance (tokio's
/// test-util), so this holds one, blocked on a channel (not sleeping) until dropped.
pub struct FrozenClock {
    release: Option<std::sync::mpsc::Sender<()>>,
}

impl FrozenClock {
    /// Call inside a `start_paused` current-thread runtime.
    pub fn hold() -> Self {
        let (release, wait) = std::sync::mpsc::channel::<()>();
        tokio::task::spawn_blocking(move || {
            let _ = wait.recv();
        });
        FrozenClock {
            release: Some(release),
        }
    }
}

impl Drop for FrozenClock {
    fn drop(&mut self) {
        // Disconnecting ends the blocking task, so the runtime can shut down.
        self.release.take();
    }
}

/// Awaits `fut`, failing the test if it takes longer than [`REAL_BOUND`] of real time
/// (paused tokio time cannot bound a wait for a real process).
pub async fn within<F: Future>(what: &str, fut: F) -> F::Output {
    let (expired_tx, expired) = tokio::sync::oneshot::channel::<()>();
    let (done, done_rx) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = done_rx.recv_timeout(REAL_BOUND) {
            let _ = expired_tx.send(());
        }
    });
    let out = tokio::select! {
        out = fut => out,
        _ = expired => panic!("{what}: not within {REAL_BOUND:?} of real time"),
    };
    drop(done);
    out
}

/// Lets every task woken so far run, so they see the current instant before time moves.
pub async fn settle() {
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
}

/// Moves paused time to exactly `at`, stopping 1 ms short first so that a timer due before
/// `at` fires visibly early (its reconcile would start at `at - 1ms`).
pub async fn advance_to(at: tokio::time::Instant) {
    let now = tokio::time::Instant::now();
    let step = Duration::from_millis(1);
    assert!(at >= now + step, "advance_to: {at:?} is not ahead");
    settle().await;
    tokio::time::advance(at - now - step).await;
    settle().await;
    tokio::time::advance(step).await;
    settle().await;
}

/// A scratch directory with one resource's template, destination and command logs.
pub struct Scratch {
    /// Holds the directory.
    pub dir: tempfile::TempDir,
}

impl Scratch {
    /// An empty scratch directory.
    pub fn new() -> Self {
        Scratch {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// A path in it.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The file's content, `None` when missing.
    pub fn read(&self, name: &str) -> Option<String> {
        std::fs::read_to_string(self.path(name)).ok()
    }

    /// How many lines the file has (0 when missing).
    pub fn lines(&self, name: &str) -> usize {
        self.read(name).map_or(0, |t| t.lines().count())
    }

    /// Creates (empty) the file `name`.
    pub fn touch(&self, name: &str) {
        std::fs::write(self.path(name), b"").unwrap();
    }

    /// Names in the directory other than `keep`: staged leftovers and the like.
    pub fn others(&self, keep: &[&str]) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| !keep.contains(&n.as_str()))
            .collect();
        names.sort();
        names
    }

    /// A resource `name` rendering `value = {{ getv(key="/app/value") }}` into `<name>.conf`
    /// here, watching `/app`.
    pub fn resource(
        &self,
        name: &str,
        batch: BatchSettings,
        check: Option<&str>,
        reload: Option<&str>,
    ) -> Prepared {
        let src = self.path(&format!("{name}.tera"));
        std::fs::write(&src, "value = {{ getv(key=\"/app/value\") }}\n").unwrap();
        let resource = Resource {
            name: name.to_owned(),
            file: self.path(&format!("{name}.toml")),
            src: src.clone(),
            engine: EngineKind::Tera,
            dest: self.path(&format!("{name}.conf")),
            keys: vec!["/app".to_owned()],
            prefix: "/".to_owned(),
            uid: None,
            gid: None,
            mode: None,
            check_cmd: check.map(str::to_owned),
            reload_cmd: reload.map(str::to_owned),
            check_timeout: Duration::from_secs(30),
            reload_timeout: Duration::from_secs(30),
            batch,
            rollback: true,
            lossy_utf8: false,
        };
        let template = Template::load_as(&src, EngineKind::Tera).unwrap();
        Prepared { resource, template }
    }

    /// A resource `name` listing the values under `/app` one per line into `<name>.conf`
    /// here (watching `/app`), with `guard`: what the guard tests count.
    pub fn list_resource(&self, name: &str, guard: crate::guard::Guard) -> Prepared {
        let mut p = self.resource(name, batch(500, 5000, None), None, None);
        let src = self.path(&format!("{name}.tera"));
        std::fs::write(
            &src,
            "{% for v in getvs(pattern=\"/app/*\") %}{{ v }}\n{% endfor %}",
        )
        .unwrap();
        p.resource.batch.guard = guard;
        p.template = Template::load_as(&src, EngineKind::Tera).unwrap();
        p
    }

    /// A shell command appending a line to `log` here, then succeeding only if `flag`
    /// exists here (`None`: always).
    pub fn logging_cmd(&self, log: &str, flag: Option<&str>) -> String {
        let log = self.path(log);
        match flag {
            Some(flag) => format!(
                "echo run >> {}; test -e {}",
                log.display(),
                self.path(flag).display()
            ),
            None => format!("echo run >> {}", log.display()),
        }
    }
}

/// Batching for tests: `debounce`, `max_wait`, an optional reload limit, trailing edge.
pub fn batch(debounce_ms: u64, max_wait_ms: u64, reload_limit: Option<&str>) -> BatchSettings {
    BatchSettings {
        debounce: Duration::from_millis(debounce_ms),
        max_wait: Duration::from_millis(max_wait_ms),
        reload_limit: reload_limit.map(|l| l.parse().unwrap()),
        leading: false,
        guard: crate::guard::Guard::default(),
    }
}

/// The test's etcd: publishes one snapshot per change of `/app/value`, as the follower does.
pub struct Feed {
    /// Where snapshots go.
    pub tx: watch::Sender<Arc<Snapshot>>,
}

impl Feed {
    /// A channel holding the empty snapshot (nothing read yet), as a generation starts.
    pub fn new() -> (Self, watch::Receiver<Arc<Snapshot>>) {
        let (tx, rx) = watch::channel(Arc::new(Snapshot::default()));
        (Feed { tx }, rx)
    }

    /// Publishes the state with `/app/value = value`, one revision after the last.
    pub fn put(&self, value: &str) {
        let current = self.tx.borrow().clone();
        let mut kvs = KeyMap::new();
        kvs.insert("/app/value".to_owned(), value.to_owned());
        let next = current.successor(current.revision + 1, kvs);
        self.tx.send_replace(Arc::new(next));
    }
}

impl Feed {
    /// Publishes the state with exactly `/app/<v> = <v>` for each of `values`.
    pub fn set(&self, values: &[&str]) {
        let current = self.tx.borrow().clone();
        let mut kvs = KeyMap::new();
        for v in values {
            kvs.insert(format!("/app/{v}"), (*v).to_owned());
        }
        let next = current.successor(current.revision + 1, kvs);
        self.tx.send_replace(Arc::new(next));
    }
}

/// What a resource from [`Scratch::list_resource`] renders for `values` (sorted).
pub fn listed(values: &[&str]) -> String {
    let mut v = values.to_vec();
    v.sort();
    v.iter().map(|v| format!("{v}\n")).collect()
}

/// What a resource from [`Scratch::resource`] renders for `value`.
pub fn rendered(value: &str) -> String {
    format!("value = {value}\n")
}
