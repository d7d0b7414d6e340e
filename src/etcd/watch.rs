//! The etcd task's I/O: keeps a local copy of every watched key by following etcd's watch, so
//! no etcd read happens per change in steady state and no change is ever missed.
//!
//! Every decision (what to read, what to watch from which revision, what to publish, which
//! endpoint next, when to back off) is the [`Follower`]'s; [`follow`] only moves messages
//! between etcd-client and it: it carries out each [`Action`] (connect, read, open a watch
//! stream, ask for progress, refresh the token, send a snapshot or the health, arm the timer)
//! and feeds the result back as an [`Input`], turning each watch response into a typed
//! [`WatchMessage`]. It also notes when etcd last answered, for the watchdog.
//!
//! [`poll`] is confd's interval mode: a full read every interval, published when it differs.
//!
//! Waits on: the etcd watch stream, the follower's timer (backoff, denied-keys recheck), the
//! progress ticker, cancellation. Sends: snapshots, [`Health`].

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use etcd_client::{Client, EventType, WatchOptions, WatchRequestSender, WatchResponseStream};
use tokio::sync::watch;
use tokio::time::{Instant, Interval};
use tokio_util::sync::CancellationToken;
use tracing::{error, info};

use super::connect;
use super::endpoints::jittered;
use super::follower::{
    after_read, Action, Follower, FollowerConfig, Input, KeyEvent, WatchMessage, WatchRange,
};
pub use super::follower::{Health, Reach};
use crate::config::EtcdSettings;
use crate::store::Snapshot;

/// How often watched keys the etcd user may not read are tried again, so a role granted
/// later takes effect without a restart.
const DENIED_RECHECK: Duration = Duration::from_secs(60);

/// How often the follower asks etcd for a progress report, so a stalled watch shows up as
/// silence (and stops the watchdog) even when no key changes.
pub fn progress_interval() -> Duration {
    match sd_notify::watchdog_enabled() {
        Some(w) => (w / 4).clamp(Duration::from_millis(250), Duration::from_secs(30)),
        None => Duration::from_secs(30),
    }
}

/// Follows etcd until `cancel` fires, publishing a snapshot per applied revision.
///
/// The first snapshot is published after the first successful full read; until then the
/// channel holds the empty snapshot at revision 0.
pub async fn follow(
    settings: EtcdSettings,
    watched: Vec<String>,
    tx: watch::Sender<Arc<Snapshot>>,
    health: watch::Sender<Health>,
    cancel: CancellationToken,
) {
    let config = FollowerConfig {
        watched,
        endpoints: settings.endpoints.clone(),
        user: settings.username.clone(),
        progress_every: progress_interval(),
        denied_recheck: DENIED_RECHECK,
        reread_jitter: settings.reread_jitter,
        jitter_first_read: settings.read == crate::config::ReadMode::Serializable,
        prefer_first_after: settings.prefer_first_after,
        rediscover: settings.srv.is_some(),
    };
    let mut follower = Follower::new(config, tx.borrow().clone());
    let mut io = Io::new(settings, tx, health);
    let mut actions: VecDeque<Action> = follower.start().into();
    loop {
        while let Some(action) = actions.pop_front() {
            let input = tokio::select! {
                _ = cancel.cancelled() => return,
                input = io.execute(action) => input,
            };
            if let Some(input) = input {
                actions.extend(follower.handle(input));
            }
        }
        let input = tokio::select! {
            _ = cancel.cancelled() => return,
            input = io.next_input() => input,
        };
        actions.extend(follower.handle(input));
    }
}

/// The follower's connection, stream and timers.
struct Io {
    /// The configured settings; `endpoints` is replaced by the one in use.
    settings: EtcdSettings,
    /// The connection of the current session.
    client: Option<Client>,
    /// The open watch stream's request side (progress requests).
    requests: Option<WatchRequestSender>,
    /// The open watch stream's responses.
    stream: Option<WatchResponseStream>,
    /// The open stream's progress ticker.
    progress: Option<Interval>,
    /// When the follower's one timer fires.
    timer: Option<Instant>,
    /// A watch response whose header was told first, to tell next.
    pending: Option<Input>,
    /// When the open stream last brought anything (or was opened).
    heard: Option<Instant>,
    /// The probe of the preferred member under way ([`Action::Probe`]), and its answers.
    probe: Option<tokio::task::JoinHandle<()>>,
    probed_tx: tokio::sync::mpsc::UnboundedSender<bool>,
    probed_rx: tokio::sync::mpsc::UnboundedReceiver<bool>,
    snapshots: watch::Sender<Arc<Snapshot>>,
    health: watch::Sender<Health>,
}

impl Io {
    fn new(
        settings: EtcdSettings,
        snapshots: watch::Sender<Arc<Snapshot>>,
        health: watch::Sender<Health>,
    ) -> Self {
        let (probed_tx, probed_rx) = tokio::sync::mpsc::unbounded_channel();
        Io {
            probe: None,
            probed_tx,
            probed_rx,
            settings,
            client: None,
            requests: None,
            stream: None,
            progress: None,
            timer: None,
            pending: None,
            heard: None,
            snapshots,
            health,
        }
    }

    /// The endpoint in use.
    fn endpoint(&self) -> String {
        self.settings.endpoints.join(",")
    }

    /// Carries out one action; returns its answer, if it has one.
    async fn execute(&mut self, action: Action) -> Option<Input> {
        match action {
            Action::Connect(endpoint) => Some(self.connect(endpoint).await),
            Action::Read(keys) => {
                crate::metrics::etcd_full_read(self.snapshots.borrow().seq == 0);
                Some(self.read(&keys).await)
            }
            Action::Watch {
                watchers,
                progress_every,
            } => Some(self.watch(&watchers, progress_every).await),
            Action::RequestProgress => {
                let requests = self.requests.as_mut()?;
                let sent = requests.request_progress().await;
                sent.err().map(|e| self.watch_failed(e))
            }
            Action::Confirm(key) => {
                let client = self.client.as_ref()?;
                Some(match super::confirm(client, &self.settings, &key).await {
                    Ok(header) => {
                        self.answered();
                        Input::Confirmed(header)
                    }
                    Err(e) => Input::Failed(e.to_string()),
                })
            }
            Action::RefreshToken => {
                let client = self.client.as_ref()?;
                Some(match client.refresh_token().await {
                    Ok(()) => Input::TokenRefreshed,
                    Err(e) => self.watch_failed(e),
                })
            }
            Action::Publish(snapshot) => {
                crate::metrics::etcd_snapshot(snapshot.revision, snapshot.kvs.len());
                self.snapshots.send_replace(snapshot);
                None
            }
            Action::Reach(reach) => {
                let connected = matches!(reach, Reach::Reachable { .. });
                crate::metrics::etcd_reach(reach.member(), connected);
                self.health.send_modify(|h| h.reach = reach);
                None
            }
            Action::Timer(after) => {
                self.timer = after.map(|d| Instant::now() + d);
                None
            }
            Action::Backoff(base) => {
                self.drop_session();
                self.timer = Some(Instant::now() + jittered(base));
                None
            }
            Action::Rediscover => match super::srv::discover(&self.settings).await {
                Ok(found) => Some(Input::Discovered(found.endpoints)),
                Err(e) => {
                    tracing::warn!("{e}; keeping the known endpoints");
                    None
                }
            },
            Action::Probe { endpoint, after } => {
                self.start_probe(endpoint, after);
                None
            }
        }
    }

    /// After `after`, beside the session, asks `endpoint` for its status: healthy when it
    /// answers and knows a leader. Replaces a probe not yet done.
    fn start_probe(&mut self, endpoint: String, after: Duration) {
        if let Some(old) = self.probe.take() {
            old.abort();
        }
        let mut one = self.settings.clone();
        one.endpoints = vec![endpoint.clone()];
        let tx = self.probed_tx.clone();
        self.probe = Some(tokio::spawn(async move {
            tokio::time::sleep(after).await;
            let healthy = match connect(&one).await {
                Ok(mut client) => match client.status().await {
                    Ok(status) => status.leader() != 0,
                    Err(e) => {
                        tracing::debug!(reconfd.endpoint = %endpoint, "probe: {}", super::reason::describe(&e));
                        false
                    }
                },
                Err(e) => {
                    tracing::debug!(reconfd.endpoint = %endpoint, "probe: {e}");
                    false
                }
            };
            let _ = tx.send(healthy);
        }));
    }

    fn drop_stream(&mut self) {
        self.pending = None;
        self.requests = None;
        self.stream = None;
        self.progress = None;
    }

    fn drop_session(&mut self) {
        self.drop_stream();
        self.client = None;
    }

    async fn connect(&mut self, endpoint: String) -> Input {
        self.drop_session();
        self.settings.endpoints = vec![endpoint];
        match connect(&self.settings).await {
            Ok(client) => {
                crate::metrics::etcd_connected(&self.endpoint());
                self.client = Some(client);
                Input::Connected
            }
            Err(e) => Input::Failed(e.to_string()),
        }
    }

    async fn read(&mut self, keys: &[String]) -> Input {
        self.drop_stream();
        let Some(client) = self.client.as_mut() else {
            return Input::Failed(format!("no connection to {}", self.endpoint()));
        };
        match super::read_allowed(client, &self.settings, keys).await {
            Ok(read) => {
                self.answered();
                Input::ReadDone(read)
            }
            Err(e) => Input::Failed(e.to_string()),
        }
    }

    /// Opens a stream with `watchers`, created in order on it.
    async fn watch(&mut self, watchers: &[WatchRange], progress_every: Duration) -> Input {
        self.drop_stream();
        let Some(client) = self.client.as_mut() else {
            return Input::Failed(format!("no connection to {}", self.endpoint()));
        };
        let options = |w: &WatchRange| {
            let o = WatchOptions::new()
                .with_start_revision(w.start_revision)
                .with_progress_notify();
            match &w.end {
                Some(end) => o.with_range(end.as_str()),
                None => o,
            }
        };
        let Some((first, rest)) = watchers.split_first() else {
            return Input::WatchOpened;
        };
        let stream = match client
            .watch_client()
            .max_decoding_message_size(self.settings.max_message_size)
            .watch(first.start.as_str(), Some(options(first)))
            .await
        {
            Ok(s) => s,
            Err(e) => return self.watch_failed(e),
        };
        let (mut requests, stream) = stream.split();
        for w in rest {
            if let Err(e) = requests.watch(w.start.as_str(), Some(options(w))).await {
                return self.watch_failed(e);
            }
        }
        // Not at once: etcd 3.4 answers a progress request with its current revision even
        // while a new watcher is still catching up; the follower ignores that answer, but
        // there is no point in asking before the watchers had time to catch up.
        let mut progress =
            tokio::time::interval_at(Instant::now() + progress_every, progress_every);
        progress.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        self.requests = Some(requests);
        self.stream = Some(stream);
        self.heard = Some(Instant::now());
        self.progress = Some(progress);
        Input::WatchOpened
    }

    fn watch_failed(&self, source: etcd_client::Error) -> Input {
        if super::is_oversized(&source) {
            return Input::Oversized(format!(
                "a watch response from {} is larger than [etcd] max_message_size ({} bytes): {source}",
                self.endpoint(),
                self.settings.max_message_size
            ));
        }
        Input::Failed(format!(
            "watch on {} failed: {}",
            self.endpoint(),
            super::reason::describe(&source)
        ))
    }

    /// etcd answered just now.
    fn answered(&self) {
        // Read by the supervisor at its watchdog tick; not worth waking it for each event.
        self.health.send_if_modified(|h| {
            h.last_answer = Some(std::time::Instant::now());
            false
        });
    }

    /// Waits for the next watch response, progress tick or timer.
    async fn next_input(&mut self) -> Input {
        if let Some(input) = self.pending.take() {
            return input;
        }
        enum Woke {
            Timer,
            Progress,
            Message(Result<Option<etcd_client::WatchResponse>, etcd_client::Error>),
            Probed(bool),
        }
        let (timer, progress, stream) = (self.timer, &mut self.progress, &mut self.stream);
        let probed = &mut self.probed_rx;
        let woke = tokio::select! {
            Some(healthy) = probed.recv() => Woke::Probed(healthy),
            _ = async {
                match timer {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            } => Woke::Timer,
            _ = async {
                match progress.as_mut() {
                    Some(p) => p.tick().await,
                    None => std::future::pending().await,
                }
            } => Woke::Progress,
            m = async {
                match stream.as_mut() {
                    Some(s) => s.message().await,
                    None => std::future::pending().await,
                }
            } => Woke::Message(m),
        };
        match woke {
            Woke::Timer => {
                self.timer = None;
                Input::TimerFired
            }
            Woke::Progress => Input::ProgressDue,
            Woke::Message(Ok(Some(resp))) => {
                self.answered();
                self.heard = Some(Instant::now());
                self.pending = Some(Input::Message(message_of(&resp)));
                Input::Header(super::header_of(resp.header()))
            }
            Woke::Message(Ok(None)) => {
                self.drop_stream();
                Input::StreamEnded
            }
            Woke::Message(Err(e)) => {
                // A broken stream may yield garbage after its error (an oversized message
                // leaves the rest of it unread): nothing more is taken from it.
                let silent = self.heard.map(|t| t.elapsed());
                self.drop_stream();
                match silent {
                    Some(silent) if gave_up_by_keep_alive(&e, silent) => Input::Failed(format!(
                        "watch on {} failed: keep-alive timeout (the member did not answer the connection's pings; nothing heard for {}s)",
                        self.endpoint(),
                        silent.as_secs()
                    )),
                    _ => self.watch_failed(e),
                }
            }
            Woke::Probed(healthy) => {
                self.probe = None;
                Input::Probed { healthy }
            }
        }
    }
}

impl Drop for Io {
    fn drop(&mut self) {
        if let Some(probe) = self.probe.take() {
            probe.abort();
        }
    }
}

/// Whether a stream that failed with `e` after `silent` without a message was most likely closed
/// by the HTTP/2 keep-alive: hyper closes such a connection quietly, and the stream then only
/// says "broken pipe" or "connection closed". A member that was killed or restarted resets the
/// connection at once instead, usually while it still answered within the last
/// [`super::KEEP_ALIVE_TIMEOUT`].
fn gave_up_by_keep_alive(e: &etcd_client::Error, silent: Duration) -> bool {
    let text = format!("{e:?}");
    let closed = [
        "BrokenPipe",
        "broken pipe",
        "connection closed",
        "KeepAlive",
    ]
    .iter()
    .any(|needle| text.contains(needle));
    closed && silent >= super::KEEP_ALIVE_TIMEOUT
}

/// What a watch response means, in the follower's terms. A compaction is checked first (etcd
/// also marks it cancelled), then a cancel; a "created" response carries no events.
fn message_of(resp: &etcd_client::WatchResponse) -> WatchMessage {
    let watch_id = resp.watch_id();
    if resp.compact_revision() > 0 {
        return WatchMessage::Compacted {
            watch_id,
            created: resp.created(),
            compact_revision: resp.compact_revision(),
        };
    }
    if resp.canceled() {
        return WatchMessage::Canceled {
            watch_id,
            created: resp.created(),
            reason: resp.cancel_reason().to_owned(),
        };
    }
    if resp.created() {
        return WatchMessage::Created { watch_id };
    }
    if resp.events().is_empty() {
        return WatchMessage::Progress {
            watch_id,
            revision: resp.header().map(|h| h.revision()),
        };
    }
    let text = crate::store::text::decode;
    let events = resp
        .events()
        .iter()
        .filter_map(|ev| {
            let kv = ev.kv()?;
            let (key, key_ok) = text(kv.key());
            let (value, value_ok) = match ev.event_type() {
                EventType::Put => {
                    let (v, ok) = text(kv.value());
                    (Some(v), ok)
                }
                EventType::Delete => (None, true),
            };
            Some(KeyEvent {
                key,
                value,
                not_text: !(key_ok && value_ok),
                mod_revision: kv.mod_revision(),
            })
        })
        .collect();
    WatchMessage::Events { watch_id, events }
}

/// confd's interval mode: reads every watched key every `every` and publishes the state when
/// it differs, instead of watching.
pub async fn poll(
    settings: EtcdSettings,
    watched: Vec<String>,
    every: Duration,
    tx: watch::Sender<Arc<Snapshot>>,
    health: watch::Sender<Health>,
    cancel: CancellationToken,
) {
    let mut watched = watched;
    watched.sort();
    watched.dedup();
    let mut failing: Option<String> = None;
    let endpoints = settings.endpoints.join(",");
    loop {
        let result = super::read_any(&settings, &watched);
        let result = tokio::select! {
            _ = cancel.cancelled() => return,
            r = result => r,
        };
        match result {
            Ok(read) => {
                if failing.take().is_some() {
                    info!(
                        revision = read.snapshot.revision,
                        message_id = crate::logging::ETCD_RECOVERED,
                        "etcd reachable again"
                    );
                }
                health.send_modify(|h| {
                    h.last_answer = Some(std::time::Instant::now());
                    h.reach = Reach::Reachable {
                        member: read.endpoint.clone(),
                    };
                });
                let current = tx.borrow().clone();
                if current.seq == 0
                    || current.kvs != read.snapshot.kvs
                    || *current.denied != *read.denied
                {
                    let user = settings.username.as_deref();
                    let next = after_read(&current, read, user, &endpoints, every);
                    tx.send_replace(Arc::new(next));
                }
            }
            Err(e) => {
                let message = e.to_string();
                if failing.as_deref() != Some(message.as_str()) {
                    error!(
                        message_id = crate::logging::ETCD_UNREACHABLE,
                        "{message}; trying again in {}",
                        humantime::format_duration(every)
                    );
                    health.send_modify(|h| {
                        let last_member = h.member().map(str::to_owned);
                        h.reach = Reach::Unreachable {
                            error: message.clone(),
                            last_member,
                        };
                    });
                    failing = Some(message);
                }
            }
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
    }
}
