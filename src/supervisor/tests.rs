//! The supervisor in process and in paused time: real resource files loaded by the one
//! loader, a snapshot source fed by the test, a notifier that records what systemd would be
//! told (and when), and shutdown and reload injected as a future and a channel.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{run, Notifier, Options, SnapshotSource, Task};
use crate::config::{EtcdSettings, Overrides, Settings};
use crate::etcd::watch::Health;
use crate::reconciler::testkit::{advance_to, listed, rendered, settle, within, Feed, FrozenClock};
use crate::reconciler::{Approval, InstallMode};
use crate::store::Snapshot;

const MS: Duration = Duration::from_millis(1);

/// What systemd would have been told.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Event {
    /// READY=1 with its STATUS=, and the watched destinations' content at that moment.
    Ready(String, Vec<Option<String>>),
    Status(String),
    Reloading,
    Stopping,
}

struct Recorder {
    events: mpsc::UnboundedSender<(Instant, Event)>,
    /// Read when READY=1 is sent.
    dests: Vec<PathBuf>,
}

impl Recorder {
    fn send(&self, event: Event) {
        let _ = self.events.send((Instant::now(), event));
    }
}

impl Notifier for Recorder {
    fn ready(&self, status: &str) {
        let files = self
            .dests
            .iter()
            .map(|d| std::fs::read_to_string(d).ok())
            .collect();
        self.send(Event::Ready(status.to_owned(), files));
    }
    fn status(&self, status: &str) {
        self.send(Event::Status(status.to_owned()));
    }
    fn reloading(&self) {
        self.send(Event::Reloading);
    }
    fn stopping(&self) {
        self.send(Event::Stopping);
    }
    fn watchdog(&self) {}
    fn watchdog_timeout(&self) -> Option<Duration> {
        None
    }
}

/// Each generation's etcd task forwards the test's feed, and says it answers "via test".
struct Forward(watch::Receiver<Arc<Snapshot>>);

impl SnapshotSource for Forward {
    fn task(
        &self,
        _etcd: EtcdSettings,
        _watched: Vec<String>,
        snapshots: watch::Sender<Arc<Snapshot>>,
        health: watch::Sender<Health>,
        cancel: CancellationToken,
    ) -> Task {
        let mut upstream = self.0.clone();
        Box::pin(async move {
            health.send_modify(|h| {
                h.reach = crate::etcd::watch::Reach::Reachable {
                    member: "test".into(),
                };
                h.last_answer = Some(std::time::Instant::now());
            });
            loop {
                let latest = upstream.borrow_and_update().clone();
                if latest.seq > 0 {
                    snapshots.send_replace(latest);
                }
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    changed = upstream.changed() => if changed.is_err() { return },
                }
            }
        })
    }
}

/// A confdir with resources rendering `/app/value` into `out/<name>.conf`.
struct Confdir {
    dir: tempfile::TempDir,
}

impl Confdir {
    fn new() -> Self {
        let c = Confdir {
            dir: tempfile::tempdir().unwrap(),
        };
        for sub in ["conf.d", "templates", "out"] {
            std::fs::create_dir(c.dir.path().join(sub)).unwrap();
        }
        std::fs::write(
            c.path("templates/app.tera"),
            "value = {{ getv(key=\"/app/value\") }}\n",
        )
        .unwrap();
        c
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Adds `conf.d/<name>.toml` with `extra` lines; returns its destination.
    fn resource(&self, name: &str, extra: &str) -> PathBuf {
        let dest = self.path(&format!("out/{name}.conf"));
        std::fs::write(
            self.path(&format!("conf.d/{name}.toml")),
            format!(
                "[template]\nsrc = \"app.tera\"\ndest = \"{}\"\nkeys = [\"/app\"]\n{extra}",
                dest.display()
            ),
        )
        .unwrap();
        dest
    }

    fn loader(&self) -> impl Fn() -> Result<Settings, Vec<String>> + Send + Sync + 'static {
        let overrides = Overrides {
            config: Some(PathBuf::from("/dev/null")),
            confdir: Some(self.dir.path().to_owned()),
            ..Default::default()
        };
        move || {
            Settings::assemble(&overrides).map_err(|d| d.iter().map(ToString::to_string).collect())
        }
    }
}

/// A running supervisor and the test's ends of its inputs and outputs.
struct Daemon {
    feed: Feed,
    events: mpsc::UnboundedReceiver<(Instant, Event)>,
    stop: Option<oneshot::Sender<()>>,
    reload: mpsc::Sender<()>,
    task: tokio::task::JoinHandle<u8>,
}

fn start(c: &Confdir, dests: &[&Path]) -> Daemon {
    start_with(c, dests, None)
}

/// [`start`], with the control socket's end of the command channel.
fn start_with(
    c: &Confdir,
    dests: &[&Path],
    commands: Option<mpsc::Receiver<crate::control::Command>>,
) -> Daemon {
    let (feed, upstream) = Feed::new();
    let (events_tx, events) = mpsc::unbounded_channel();
    let notifier = Arc::new(Recorder {
        events: events_tx,
        dests: dests.iter().map(|d| d.to_path_buf()).collect(),
    });
    let (stop, stopped) = oneshot::channel::<()>();
    let (reload, reloads) = mpsc::channel(1);
    let shutdown = async move {
        let _ = stopped.await;
    };
    let options = Options {
        mode: InstallMode::default(),
        notifier,
        commands,
    };
    let task = tokio::spawn(run(
        c.loader(),
        Forward(upstream),
        shutdown,
        reloads,
        options,
    ));
    Daemon {
        feed,
        events,
        stop: Some(stop),
        reload,
        task,
    }
}

impl Daemon {
    async fn event(&mut self) -> (Instant, Event) {
        within("a notification", self.events.recv())
            .await
            .expect("the supervisor stopped")
    }

    /// Shuts down; expects STOPPING=1 and exit 0.
    async fn shut_down(mut self) {
        self.stop.take().unwrap().send(()).unwrap();
        assert_eq!(self.event().await.1, Event::Stopping);
        assert_eq!(
            within("the supervisor to stop", self.task).await.unwrap(),
            0
        );
    }
}

/// READY=1 comes only after every resource's first reconcile, which waits for etcd's first
/// full read: at READY both files are already in place.
#[tokio::test(start_paused = true)]
async fn ready_comes_after_every_first_reconcile() {
    let _clock = FrozenClock::hold();
    let c = Confdir::new();
    let a = c.resource("a", "check_cmd = \"true\"\n");
    let b = c.resource("b", "check_cmd = \"true\"\n");
    let mut d = start(&c, &[&a, &b]);
    settle().await;
    assert!(
        d.events.try_recv().is_err(),
        "told systemd something before etcd answered"
    );

    let t0 = Instant::now();
    d.feed.put("1");
    let one = Some(rendered("1"));
    assert_eq!(
        d.event().await,
        (
            t0,
            Event::Ready(
                "2 resources in sync at revision 1 via test".into(),
                vec![one.clone(), one]
            )
        )
    );
    d.shut_down().await;
}

/// A reload hands the owed reload (without rollback) and the reload budget to the next
/// generation: its first reconcile runs the owed reload although the file is in sync, and the
/// budget spent before the reload still defers the next install.
#[tokio::test(start_paused = true)]
async fn reload_hands_owed_reload_and_budget_to_the_next_generation() {
    let _clock = FrozenClock::hold();
    let c = Confdir::new();
    let reloads = c.path("reloads");
    let ok = c.path("ok");
    let app = c.resource(
        "app",
        &format!(
            "check_cmd = \"true\"\nreload_cmd = \"echo run >> {}; test -e {}\"\n\
             debounce = \"500ms\"\nreload_limit = \"1/1h\"\nrollback = false\n",
            reloads.display(),
            ok.display()
        ),
    );
    let lines = || std::fs::read_to_string(&reloads).map_or(0, |t| t.lines().count());
    let mut d = start(&c, &[&app]);
    let t0 = Instant::now();
    d.feed.put("1");
    let one = Some(rendered("1"));
    assert_eq!(
        d.event().await,
        (
            t0,
            Event::Ready(
                "0 resources in sync via test; 1 failing (app: reload failed)".into(),
                vec![one.clone()]
            )
        )
    );
    assert_eq!(lines(), 1);

    std::fs::write(&ok, b"").unwrap();
    d.reload.send(()).await.unwrap();
    assert_eq!(d.event().await, (t0, Event::Reloading));
    assert_eq!(
        d.event().await,
        (
            t0,
            Event::Ready(
                "1 resource in sync at revision 1 via test".into(),
                vec![one.clone()]
            )
        )
    );
    assert_eq!(lines(), 2, "the owed reload did not run after the reload");

    d.feed.put("2");
    advance_to(t0 + 500 * MS).await;
    assert_eq!(
        d.event().await,
        (
            t0 + 500 * MS,
            Event::Status("0 resources in sync via test; 1 waiting for the reload limit".into())
        )
    );
    assert_eq!(std::fs::read_to_string(&app).ok(), one);
    assert_eq!(lines(), 2);
    d.shut_down().await;
}

/// Shutdown waits for an install in flight: the check is held open by the test, STOPPING=1
/// is sent at once, but the supervisor returns only after the file is in place.
#[tokio::test(start_paused = true)]
async fn shutdown_waits_for_an_install_in_flight() {
    let _clock = FrozenClock::hold();
    let c = Confdir::new();
    let (started, go) = (c.path("started"), c.path("go"));
    for fifo in [&started, &go] {
        nix::unistd::mkfifo(fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
    }
    let app = c.resource(
        "app",
        &format!(
            "check_cmd = \"echo started > {}; read line < {}\"\n",
            started.display(),
            go.display()
        ),
    );
    let mut d = start(&c, &[&app]);
    d.feed.put("1");
    let said = within(
        "the check to start",
        tokio::task::spawn_blocking(move || std::fs::read_to_string(started)),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(said, "started\n");

    d.stop.take().unwrap().send(()).unwrap();
    assert_eq!(d.event().await.1, Event::Stopping);
    settle().await;
    assert!(!d.task.is_finished(), "stopped with an install in flight");
    assert!(!app.exists());

    within(
        "the check to be released",
        tokio::task::spawn_blocking(move || std::fs::write(go, b"go\n")),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(within("the supervisor to stop", d.task).await.unwrap(), 0);
    assert_eq!(std::fs::read_to_string(&app).ok(), Some(rendered("1")));
    let mut left: Vec<String> = std::fs::read_dir(c.path("out"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    left.sort();
    assert_eq!(left, ["app.conf"]);
}

/// `reconfd approve`'s path: a Command::Approve reaches the held resource's actor, which
/// installs the held render at once; the STATUS= line says held, then in sync. An unknown
/// name, or a resource that holds nothing, is answered as such.
#[tokio::test(start_paused = true)]
async fn approve_installs_a_held_render_through_the_command_channel() {
    let _clock = FrozenClock::hold();
    let c = Confdir::new();
    std::fs::write(
        c.path("templates/list.tera"),
        "{% for v in getvs(pattern=\"/app/*\") %}{{ v }}\n{% endfor %}",
    )
    .unwrap();
    let app = c.path("out/app.conf");
    std::fs::write(
        c.path("conf.d/app.toml"),
        format!(
            "[template]\nsrc = \"list.tera\"\ndest = \"{}\"\nkeys = [\"/app\"]\nmax_shrink = \"50%\"\n",
            app.display()
        ),
    )
    .unwrap();
    let (commands, rx) = mpsc::channel(4);
    let mut d = start_with(&c, &[&app], Some(rx));
    let approve = |name: &str| {
        let (reply, answer) = oneshot::channel();
        let command = crate::control::Command::Approve {
            resource: name.to_owned(),
            reply,
        };
        let commands = commands.clone();
        async move {
            commands.send(command).await.unwrap();
            within("the approval's answer", answer).await.unwrap()
        }
    };
    let t0 = Instant::now();
    d.feed.set(&["a", "b", "c", "d"]);
    let four = Some(listed(&["a", "b", "c", "d"]));
    assert_eq!(
        d.event().await,
        (
            t0,
            Event::Ready(
                "1 resource in sync at revision 1 via test".into(),
                vec![four.clone()]
            )
        )
    );
    assert_eq!(approve("app").await, Approval::NotHeld);
    assert_eq!(approve("nope").await, Approval::Unknown);

    d.feed.set(&["a"]);
    advance_to(t0 + 500 * MS).await;
    assert_eq!(
        d.event().await,
        (
            t0 + 500 * MS,
            Event::Status("0 resources in sync via test; 1 held (app: 1 of 4 keys)".into())
        )
    );
    assert_eq!(std::fs::read_to_string(&app).ok(), four);

    assert_eq!(approve("app").await, Approval::Accepted);
    assert_eq!(
        d.event().await,
        (
            t0 + 500 * MS,
            Event::Status("1 resource in sync at revision 2 via test".into())
        )
    );
    assert_eq!(std::fs::read_to_string(&app).ok(), Some(listed(&["a"])));
    d.shut_down().await;
}
