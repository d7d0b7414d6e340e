//! The etcd follower's decisions, without I/O: a state machine that owns the local copy of
//! every watched key and decides what to read, what to watch from which revision, what to
//! publish, and which endpoint to use next.
//!
//! [`super::watch::follow`] runs it: it carries out each [`Action`] (connect, read, open a
//! watch stream, ask for progress, refresh the token, send on a channel, arm the timer) and
//! feeds every result back as an [`Input`]. Nothing here touches the network, a channel or the
//! clock, so each case below has a unit test (`follower/tests.rs`).
//!
//! - At start, after a compaction, when the denied-keys recheck comes due, and when etcd
//!   refuses a split watcher, it reads every watched key at one revision R
//!   ([`super::read_allowed`], on the session's connection) and publishes the result, which
//!   lists every key that differs from the previous snapshot.
//! - It watches, on one stream, the smallest key range covering every readable watched key,
//!   from R+1. One watcher means every response is a whole revision, so each snapshot it
//!   publishes is a state etcd had; events for keys in the range but not watched are dropped.
//! - Least-privilege users: a watched key the user may not read is listed in the snapshot's
//!   `denied` (its resources do not render; the others do) and read again every
//!   `denied_recheck`. When etcd refuses the covering watch ("permission denied": the range
//!   spans keys of other services), the watch is split into one watcher per watched key and one
//!   per its `/` children ([`super::key_ranges`]), each resuming from its own revision; etcd
//!   answers a stream's create requests in order, so the n-th "created" is the n-th range's
//!   watcher. A transaction spanning two of those ranges may then reach the local copy in two
//!   steps. The covering watch is tried again after each full read. A refused split watcher
//!   means a key readable at the last read no longer is: a read is owed; a second refusal
//!   before any watcher answered ends the session (failover, then backoff), the read still owed.
//! - A cancel for an expired or invalid auth token: refresh the token and watch again, from
//!   the same revisions; no read.
//! - Any stream error, end of stream or failed call ends the session: the next endpoint is
//!   tried ([`super::endpoints::Failover`]), and each watcher resumes from its last applied
//!   revision + 1.
//! - Resume points move with events and with a watcher's own progress notification (sent once
//!   it has caught up), never with the answer to a progress request (watch id -1) nor with a
//!   "created" response's header: etcd 3.4 may send those ahead of events still queued for a
//!   watcher catching up, and a session ending right then would resume after events it never
//!   delivered.
//! - After a failover, the first endpoint (the preferred member) is probed once per minimum
//!   stay beside the watch; when it answers, the watch moves back to it, resuming from the last
//!   applied revision + 1 ([`super::preference`]). With endpoints from DNS SRV, a round in
//!   which every member failed asks DNS again, and the new answer is tried first.
//! - [`Reach`] says whether etcd can be followed, and through which member; it changes once per
//!   state change, as do the "unreachable" / "reachable again" log lines. etcd is reachable
//!   again only once a request was answered (a read, a watch response), never on a mere
//!   connect; the backoff starts again from its shortest wait only once the watch delivered
//!   something (events or progress), so a member that accepts connections and then fails is
//!   retried ever more slowly.
//! - Restores and new clusters: every answer's header is checked against the cluster ID and
//!   the revision already applied. A different cluster ID, or a revision below the applied
//!   one in a linearizable answer (a linearizable read, or [`Action::Confirm`]), means etcd
//!   was restored from an older snapshot or re-created: one warning names both, and every
//!   watched key is read again at the new revision, as after a compaction. Other answers (a
//!   watch's headers, a serializable read) may come from a member or proxy that merely lags:
//!   one below the applied revision is confirmed with a linearizable request first, once per
//!   session.
//! - A progress request still unanswered when the next is due (etcd 3.4's gRPC proxy never
//!   answers them) is followed by [`Action::Confirm`]: its answer proves etcd alive for the
//!   watchdog on a quiet prefix, and checks for a restore behind the proxy.
//! - A watch response larger than `[etcd] max_message_size` cannot be resumed past: every
//!   watched key is read instead; a second one before the watch delivered anything ends the
//!   session (backoff).
//! - Every full read after the first is preceded by a random delay of up to
//!   `[etcd] reread_jitter`, so the hosts of a fleet that lost etcd at the same moment do not
//!   read the whole prefix at the same instant. A resume from the applied revision (the usual
//!   case after a failover) reads nothing and waits for nothing.
//!
//! Not here: the connection, the read's transactions (`etcd::read_allowed`), the timers'
//! clock, the channels and when etcd last answered (all in `watch.rs`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::{debug, error, info, warn};

use super::endpoints::{Failover, Next};
use super::preference::{Preference, Step};
use super::{key_ranges, EtcdError, Read};
use crate::keys;
use crate::store::{merge_prefixes, Snapshot};

/// Whether etcd can be followed, and through which member.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Reach {
    /// Nothing has been tried or nothing has failed yet since start.
    #[default]
    NotYetReached,
    /// Read and followed through `member`.
    Reachable {
        /// The endpoint in use.
        member: String,
    },
    /// Every endpoint failed in a row; retrying with backoff.
    Unreachable {
        /// The last failure.
        error: String,
        /// The endpoint last followed, if any: the files are in sync with what came from it.
        last_member: Option<String>,
    },
}

impl Reach {
    /// The endpoint in use, or last used while etcd is unreachable.
    pub fn member(&self) -> Option<&str> {
        match self {
            Reach::NotYetReached => None,
            Reach::Reachable { member } => Some(member),
            Reach::Unreachable { last_member, .. } => last_member.as_deref(),
        }
    }

    /// Why etcd cannot be followed, while it cannot.
    pub fn error(&self) -> Option<&str> {
        match self {
            Reach::Unreachable { error, .. } => Some(error),
            _ => None,
        }
    }
}

/// How the etcd task is doing, for STATUS= and the watchdog.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Health {
    /// Whether etcd can be followed, and through which member.
    pub reach: Reach,
    /// When etcd last answered (a watch response, a progress report or a read); `None` until
    /// it first did. Updated without waking receivers: the supervisor reads it at its watchdog
    /// tick.
    pub last_answer: Option<Instant>,
}

impl Health {
    /// The endpoint in use (or last used), for "via …".
    pub fn member(&self) -> Option<&str> {
        self.reach.member()
    }

    /// Why etcd cannot be followed, while it cannot.
    pub fn error(&self) -> Option<&str> {
        self.reach.error()
    }

    /// Whether etcd answered less than `limit` ago.
    pub fn answered_within(&self, limit: Duration) -> bool {
        self.last_answer.is_some_and(|t| t.elapsed() < limit)
    }

    /// Whether etcd has ever answered.
    pub fn answered(&self) -> bool {
        self.last_answer.is_some()
    }
}

/// The cluster and revision of one etcd answer (a response header).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Header {
    /// The cluster's ID; 0 when unknown.
    pub cluster_id: u64,
    /// etcd's revision when it answered; 0 when unknown.
    pub revision: i64,
}

/// What the follower is given at start.
#[derive(Debug, Clone)]
pub struct FollowerConfig {
    /// Watched keys (full keys), in any order, duplicates allowed.
    pub watched: Vec<String>,
    /// The configured endpoints, tried in this order.
    pub endpoints: Vec<String>,
    /// The etcd user, named in the error about denied keys.
    pub user: Option<String>,
    /// How often a watch stream asks etcd for a progress report, so a stalled watch shows up
    /// as silence even when no key changes.
    pub progress_every: Duration,
    /// How often watched keys the user may not read are read again, so a role granted later
    /// takes effect without a restart.
    pub denied_recheck: Duration,
    /// The longest random delay before a full read other than the first (`[etcd]
    /// reread_jitter`).
    pub reread_jitter: Duration,
    /// Delay the first read too (`[etcd] read = "serializable"`, the gRPC proxy's path): the
    /// hosts of a fleet started together then reach the proxy spread out, and most of them are
    /// answered from the cache the first one filled instead of each reading through to etcd.
    pub jitter_first_read: bool,
    /// After a failover, the minimum stay before going back to the first endpoint
    /// ([`super::preference`]); `None` never goes back.
    pub prefer_first_after: Option<Duration>,
    /// The endpoints come from DNS SRV: ask again after every round in which all failed.
    pub rediscover: bool,
}

/// One key's change, as a watch event carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyEvent {
    /// The full key.
    pub key: String,
    /// The new value; `None` when the key was deleted.
    pub value: Option<String>,
    /// The revision of the change.
    pub mod_revision: i64,
    /// The key or the new value was not valid UTF-8 (they are held lossily; see
    /// [`crate::store::text`]).
    pub not_text: bool,
}

/// One watch response, by what it means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchMessage {
    /// A create request was answered: this is the next range's watcher. Its header revision is
    /// etcd's current one, not how far the watcher got, so it is not kept.
    Created {
        /// The new watcher's id.
        watch_id: i64,
    },
    /// A response without events: a watcher's own progress notification (it has delivered
    /// everything up to `revision`), or, with watch id -1, the answer to a progress request.
    Progress {
        /// The watcher, or -1 for the stream.
        watch_id: i64,
        /// The header revision.
        revision: Option<i64>,
    },
    /// Events of one or more whole revisions, of one watcher's range.
    Events {
        /// The watcher.
        watch_id: i64,
        /// The changes, in revision order.
        events: Vec<KeyEvent>,
    },
    /// The watcher's start revision was compacted away (it is cancelled).
    Compacted {
        /// The watcher.
        watch_id: i64,
        /// Whether this also answers a create request.
        created: bool,
        /// The oldest revision etcd still has.
        compact_revision: i64,
    },
    /// etcd cancelled (or refused to create) a watcher.
    Canceled {
        /// The watcher.
        watch_id: i64,
        /// Whether this answers a create request (a refusal).
        created: bool,
        /// etcd's reason.
        reason: String,
    },
}

/// What happened, told to [`Follower::handle`].
#[derive(Debug, Clone)]
pub enum Input {
    /// [`Action::Connect`] succeeded (connected, and logged in with a user).
    Connected,
    /// [`Action::Read`] succeeded.
    ReadDone(Read),
    /// [`Action::Watch`] opened the stream and sent every create request.
    WatchOpened,
    /// A watch response's header, told just before the response itself.
    Header(Header),
    /// A watch response.
    Message(WatchMessage),
    /// The watch stream broke on a response larger than `[etcd] max_message_size`; the
    /// message says so, naming the endpoint.
    Oversized(String),
    /// [`Action::Confirm`]'s answer.
    Confirmed(Header),
    /// The watch stream ended without an error.
    StreamEnded,
    /// The progress ticker of the open stream fired.
    ProgressDue,
    /// The timer armed by [`Action::Timer`] or [`Action::Backoff`] fired.
    TimerFired,
    /// [`Action::RefreshToken`] succeeded.
    TokenRefreshed,
    /// [`Action::Rediscover`] found these endpoints (never empty), in the order to try them.
    Discovered(Vec<String>),
    /// The probe [`Action::Probe`] asked for ended: whether the member answered.
    Probed {
        /// It answered: connected (logged in with a user) and reported a leader.
        healthy: bool,
    },
    /// A call of the session failed (connect, read, watch, progress request, token refresh),
    /// or the stream broke: the message says what, naming the endpoint.
    Failed(String),
}

/// One watcher to create: the keys `[start, end)` (just `start` without an end), from
/// `start_revision`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchRange {
    /// First key.
    pub start: String,
    /// End of the range (exclusive); `None` for the key `start` alone.
    pub end: Option<String>,
    /// The first revision to deliver: the last one applied + 1.
    pub start_revision: i64,
}

/// What to do, returned by [`Follower::handle`]; carried out in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Drop any connection and stream; connect to this endpoint (logging in with a user).
    /// Answer: [`Input::Connected`] or [`Input::Failed`].
    Connect(String),
    /// Drop the stream; read these watched keys at one revision on the connection.
    /// Answer: [`Input::ReadDone`] or [`Input::Failed`].
    Read(Vec<String>),
    /// Open a new watch stream (dropping the old one) with these watchers, created in this
    /// order, each asking for progress notifications; ask the stream for progress every
    /// `progress_every`, the first time one interval after opening. Answer:
    /// [`Input::WatchOpened`] or [`Input::Failed`], then the stream's messages.
    Watch {
        /// The watchers, in order.
        watchers: Vec<WatchRange>,
        /// The progress ticker's period.
        progress_every: Duration,
    },
    /// Ask the open stream for a progress report.
    RequestProgress,
    /// Refresh the auth token. Answer: [`Input::TokenRefreshed`] or [`Input::Failed`].
    RefreshToken,
    /// Ask etcd, linearizably, where the cluster is (a count of this key, keeping any open
    /// stream). Answer: [`Input::Confirmed`] or [`Input::Failed`].
    Confirm(String),
    /// Send this snapshot to the resources.
    Publish(Arc<Snapshot>),
    /// Tell the supervisor where etcd stands.
    Reach(Reach),
    /// Arm the one timer to fire after this long, replacing any armed one; `None` disarms.
    Timer(Option<Duration>),
    /// Drop the connection and stream; arm the timer for this long plus jitter
    /// ([`super::endpoints::jittered`]).
    Backoff(Duration),
    /// Ask DNS SRV for the endpoints again (while backing off). Answer: [`Input::Discovered`],
    /// or nothing when the lookup failed (the known endpoints stay).
    Rediscover,
    /// After `after`, beside the session, connect to `endpoint` and ask for its status,
    /// replacing any probe not yet done. Answer, later: [`Input::Probed`].
    Probe {
        /// The preferred endpoint.
        endpoint: String,
        /// How long to wait first.
        after: Duration,
    },
}

/// Where the follower is in its session.
#[derive(Debug)]
enum Phase {
    /// Waiting for [`Input::Connected`].
    Connecting,
    /// Waiting for [`Input::ReadDone`].
    Reading,
    /// Every watched key is denied: nothing to watch; read again when the timer fires.
    Idle,
    /// A watch stream is open (or being opened).
    Watching(Stream),
    /// Waiting for [`Input::TokenRefreshed`].
    Refreshing,
    /// Waiting for the backoff timer.
    BackingOff,
    /// Waiting for the timer before a full read ([`FollowerConfig::reread_jitter`]).
    Delaying,
}

/// What an [`Action::Confirm`] was sent for.
#[derive(Debug)]
enum Confirming {
    /// A watch header below the applied revision.
    Watch,
    /// A serializable read below the applied revision, held until confirmed.
    Read(Read),
    /// The last progress request went unanswered (etcd 3.4's gRPC proxy does not answer
    /// them): the member or proxy is proven alive, and the cluster checked, by this request.
    Probe,
}

/// The open watch stream.
#[derive(Debug)]
struct Stream {
    /// The watched keys it covers: the readable ones.
    allowed: Vec<String>,
    /// The watchers' ranges, in the order they were created.
    ranges: Vec<(String, Option<String>)>,
    /// The ids of the watchers created so far: the n-th is the n-th range's.
    ids: Vec<i64>,
}

impl Stream {
    /// Which range the watcher `watch_id` watches.
    fn range_of(&self, watch_id: i64) -> Option<usize> {
        self.ids.iter().position(|id| *id == watch_id)
    }

    /// " of [start, end)" or " of key" for the watcher a refusal answers (the last one
    /// created), or "" when the refusal answers no create request.
    fn refused(&self, created: bool) -> String {
        let range = self
            .ids
            .len()
            .checked_sub(1)
            .and_then(|i| self.ranges.get(i));
        match range {
            Some((start, Some(end))) if created => format!(" of [{start}, {end})"),
            Some((key, None)) if created => format!(" of {key}"),
            _ => String::new(),
        }
    }
}

/// The follower: the local copy of etcd, the resume points and the watch mode.
#[derive(Debug)]
pub struct Follower {
    /// Watched keys, sorted and deduplicated.
    watched: Vec<String>,
    /// The user, for the denied-keys error.
    user: Option<String>,
    /// See [`FollowerConfig::progress_every`].
    progress_every: Duration,
    /// See [`FollowerConfig::denied_recheck`].
    denied_recheck: Duration,
    /// Which endpoint to use, and when to back off.
    failover: Failover,
    /// The last published snapshot: the local copy.
    snapshot: Arc<Snapshot>,
    /// Last revision applied to the local copy.
    rev: i64,
    /// With a split watch, the last revision applied by each range's watcher, so each resumes
    /// from its own (a response of one watcher says nothing about the others); else one entry.
    range_revs: Vec<i64>,
    /// Going back to the preferred member after a failover; `None` when off.
    preference: Option<Preference>,
    /// See [`FollowerConfig::prefer_first_after`], kept for new endpoints.
    prefer_first_after: Option<Duration>,
    /// See [`FollowerConfig::rediscover`].
    rediscover: bool,
    /// A full read is owed before watching (start, compaction, recheck, refused watcher).
    needs_read: bool,
    /// The covering range was refused: watch each key on its own.
    split: bool,
    /// The split was logged (it is tried again after each full read, logged once).
    split_logged: bool,
    /// A refused split watcher sent us to read again; a second refusal before any watcher
    /// answered is an error, retried with backoff.
    denial_reread: bool,
    /// This session's watch delivered something (so its failure starts a new round).
    got_through: bool,
    /// The cluster the local copy came from; 0 until an answer said.
    cluster_id: u64,
    /// A linearizable request is out to tell a lagging member from a restored cluster.
    confirming: Option<Confirming>,
    /// In this session etcd was confirmed at or past the applied revision: lower watch headers
    /// are a lagging member's, not confirmed again (a restore needs a restart of etcd, so it
    /// ends the session).
    lag_confirmed: bool,
    /// A restore or new cluster was reported: the re-read owed is at a lower revision, and
    /// says nothing new.
    restored: bool,
    /// An oversized watch response sent us to read again; another before the watch delivered
    /// anything is an error, retried with backoff.
    oversize_reread: bool,
    /// See [`FollowerConfig::reread_jitter`].
    reread_jitter: Duration,
    /// A full read has been done (the first one is not delayed unless `jitter_first_read`).
    ever_read: bool,
    /// See [`FollowerConfig::jitter_first_read`].
    jitter_first_read: bool,
    /// The delay before the owed read has passed.
    delayed: bool,
    /// A progress request was sent on the open stream and nothing came since.
    progress_unanswered: bool,
    /// The endpoint last followed, to log a switch once.
    following: String,
    /// The last warning about a failed session, to log each distinct one once.
    last_warning: Option<String>,
    /// Where etcd stands, as last told.
    reach: Reach,
    /// Where the session is.
    phase: Phase,
}

impl Follower {
    /// A follower whose local copy starts as `snapshot` (the channel's current value).
    pub fn new(config: FollowerConfig, snapshot: Arc<Snapshot>) -> Self {
        let mut watched = config.watched;
        watched.sort();
        watched.dedup();
        Follower {
            watched,
            user: config.user,
            progress_every: config.progress_every,
            denied_recheck: config.denied_recheck,
            preference: Preference::new(&config.endpoints, config.prefer_first_after),
            prefer_first_after: config.prefer_first_after,
            rediscover: config.rediscover,
            failover: Failover::new(&config.endpoints),
            rev: snapshot.revision,
            snapshot,
            range_revs: Vec::new(),
            needs_read: true,
            split: false,
            split_logged: false,
            denial_reread: false,
            got_through: false,
            cluster_id: 0,
            confirming: None,
            lag_confirmed: false,
            restored: false,
            oversize_reread: false,
            reread_jitter: config.reread_jitter,
            ever_read: false,
            jitter_first_read: config.jitter_first_read,
            delayed: false,
            progress_unanswered: false,
            following: String::new(),
            last_warning: None,
            reach: Reach::NotYetReached,
            phase: Phase::Connecting,
        }
    }

    /// The first actions: connect to the first endpoint.
    pub fn start(&mut self) -> Vec<Action> {
        self.connect()
    }

    /// The last revision applied to the local copy.
    pub fn revision(&self) -> i64 {
        self.rev
    }

    /// The local copy, as last published.
    pub fn snapshot(&self) -> &Arc<Snapshot> {
        &self.snapshot
    }

    /// Takes in what happened; returns what to do, in order.
    pub fn handle(&mut self, input: Input) -> Vec<Action> {
        match input {
            Input::Connected | Input::TokenRefreshed => self.proceed(),
            Input::ReadDone(read) => self.read_done(read),
            Input::WatchOpened => {
                self.watch_opened();
                self.prefer(None)
            }
            Input::Probed { healthy } => self.prefer(Some(healthy)),
            Input::Discovered(endpoints) => {
                self.discovered(endpoints);
                Vec::new()
            }
            Input::Header(header) => self.watch_header(header),
            Input::Message(m) => self.message(m),
            Input::Oversized(message) => self.oversized(message),
            Input::Confirmed(header) => self.confirmed(header),
            Input::StreamEnded => {
                let message = format!("watch on {} ended", self.failover.current());
                self.end_session(message)
            }
            Input::ProgressDue => self.progress_due(),
            Input::TimerFired => self.timer_fired(),
            Input::Failed(message) => self.end_session(message),
        }
    }

    /// A watch opened (`probed` is `None`) or a probe of the preferred member ended: probe it
    /// later, move back to it, or nothing ([`super::preference`]).
    fn prefer(&mut self, probed: Option<bool>) -> Vec<Action> {
        let Some(preference) = self.preference.as_mut() else {
            return Vec::new();
        };
        let current = self.failover.current();
        let step = match probed {
            None => preference.following(current),
            Some(healthy) => {
                let watching = matches!(self.phase, Phase::Watching(_)).then_some(current);
                preference.probed(healthy, watching)
            }
        };
        match step {
            Step::Stay => Vec::new(),
            Step::Probe { endpoint, after } => vec![Action::Probe { endpoint, after }],
            Step::Return(preferred) => {
                info!(
                    reconfd.endpoint = %preferred,
                    revision = self.rev,
                    "the preferred etcd member answers again; returning to it"
                );
                self.failover.prefer_first();
                self.connect()
            }
        }
    }

    /// Connects to the current endpoint.
    fn connect(&mut self) -> Vec<Action> {
        self.phase = Phase::Connecting;
        self.got_through = false;
        self.lag_confirmed = false;
        self.confirming = None;
        vec![Action::Connect(self.failover.current().to_owned())]
    }

    /// Connected (or the token refreshed, or a re-read is due): read if a read is owed, else
    /// watch.
    fn proceed(&mut self) -> Vec<Action> {
        if !self.needs_read {
            return self.watch();
        }
        let jittered = self.ever_read || self.jitter_first_read;
        if jittered && !self.delayed && !self.reread_jitter.is_zero() {
            self.phase = Phase::Delaying;
            return vec![Action::Timer(Some(pick_delay(self.reread_jitter)))];
        }
        self.phase = Phase::Reading;
        vec![Action::Read(self.watched.clone())]
    }

    /// A full read's answer: checked against the cluster and revision already applied (a
    /// serializable one below it is confirmed first), then taken.
    fn read_done(&mut self, read: Read) -> Vec<Action> {
        let found = Header {
            cluster_id: read.cluster_id,
            revision: read.snapshot.revision,
        };
        match self.check(found, read.linearizable) {
            Check::Same => {}
            Check::Restored => self.report_restore(found),
            Check::Unsure => {
                if let Some(key) = self.readable_key() {
                    self.confirming = Some(Confirming::Read(read));
                    return vec![Action::Confirm(key)];
                }
            }
        }
        self.take_read(read)
    }

    /// How `found` compares with what the local copy came from; `linearizable` says whether
    /// it is the cluster's current state (else it may lag).
    fn check(&self, found: Header, linearizable: bool) -> Check {
        if self.restored {
            return Check::Same;
        }
        let other_cluster =
            found.cluster_id != 0 && self.cluster_id != 0 && found.cluster_id != self.cluster_id;
        let behind = found.revision > 0 && found.revision < self.rev;
        if other_cluster || (behind && linearizable) {
            Check::Restored
        } else if behind {
            Check::Unsure
        } else {
            Check::Same
        }
    }

    /// Logs, once, that etcd is not the cluster the local copy came from, and owes a full
    /// read.
    fn report_restore(&mut self, found: Header) {
        let (old, new) = (self.cluster_id, found.cluster_id);
        let what = if old != 0 && new != 0 && old != new {
            format!("etcd answers as cluster {new:x}, not cluster {old:x}")
        } else {
            format!("etcd is at revision {}", found.revision)
        };
        warn!(
            reconfd.endpoint = %self.failover.current(),
            revision = self.rev,
            etcd_revision = found.revision,
            message_id = crate::logging::ETCD_RESTORED,
            "{what}, while revision {} (cluster {old:x}) was already applied: etcd was restored from an older snapshot or re-created; reading every watched key again",
            self.rev
        );
        self.restored = true;
        self.needs_read = true;
    }

    /// A watched key the user may read, for [`Action::Confirm`].
    fn readable_key(&self) -> Option<String> {
        let denied = &self.snapshot.denied;
        self.watched.iter().find(|w| !denied.contains(w)).cloned()
    }

    /// A watch response's header: a restore or a new cluster is acted on at once, a revision
    /// below the applied one confirmed first.
    fn watch_header(&mut self, header: Header) -> Vec<Action> {
        if !matches!(self.phase, Phase::Watching(_)) || self.confirming.is_some() {
            return Vec::new();
        }
        match self.check(header, false) {
            Check::Same => Vec::new(),
            Check::Unsure if self.lag_confirmed => Vec::new(),
            Check::Unsure => match self.readable_key() {
                Some(key) => {
                    debug!(
                        revision = self.rev,
                        etcd_revision = header.revision,
                        "a watch answered below the applied revision; asking etcd where it is"
                    );
                    self.confirming = Some(Confirming::Watch);
                    vec![Action::Confirm(key)]
                }
                None => Vec::new(),
            },
            Check::Restored => {
                self.report_restore(header);
                self.proceed()
            }
        }
    }

    /// Time to ask the open stream for progress. When the last request went unanswered (etcd
    /// 3.4's gRPC proxy never answers them, so a quiet prefix would look dead to the
    /// watchdog), a small linearizable request proves etcd alive instead, and checks it was
    /// not restored meanwhile.
    fn progress_due(&mut self) -> Vec<Action> {
        if !matches!(self.phase, Phase::Watching(_)) {
            return Vec::new();
        }
        let mut actions = vec![Action::RequestProgress];
        if std::mem::replace(&mut self.progress_unanswered, true) && self.confirming.is_none() {
            if let Some(key) = self.readable_key() {
                debug!("the last progress request went unanswered; asking etcd directly");
                self.confirming = Some(Confirming::Probe);
                actions.push(Action::Confirm(key));
            }
        }
        actions
    }

    /// The linearizable answer to [`Action::Confirm`].
    fn confirmed(&mut self, header: Header) -> Vec<Action> {
        let Some(confirming) = self.confirming.take() else {
            return Vec::new();
        };
        let restored = self.check(header, true) == Check::Restored;
        if restored {
            self.report_restore(header);
        } else if matches!(confirming, Confirming::Probe) {
            // etcd answered while the watch stayed open: behind a proxy that answers no
            // progress request, as good a sign of a working session as a progress report.
            self.got_through = true;
        } else {
            debug!(
                revision = self.rev,
                etcd_revision = header.revision,
                "etcd is at or past the applied revision: the member that answered lags"
            );
            self.lag_confirmed = true;
        }
        let mut actions = self.reached();
        match confirming {
            Confirming::Read(read) => actions.extend(self.take_read(read)),
            Confirming::Watch | Confirming::Probe if restored => actions.extend(self.proceed()),
            Confirming::Watch | Confirming::Probe => {}
        }
        actions
    }

    /// A watch response was too large to accept: read everything instead of resuming the watch
    /// (which would meet the same response again); a second time before the watch delivered
    /// anything is a failure.
    fn oversized(&mut self, message: String) -> Vec<Action> {
        if self.oversize_reread || !matches!(self.phase, Phase::Watching(_)) {
            return self.end_session(message);
        }
        warn!(
            reconfd.endpoint = %self.failover.current(),
            revision = self.rev,
            "{message}; reading every watched key instead (raise [etcd] max_message_size if a value is this large on purpose)"
        );
        self.oversize_reread = true;
        self.needs_read = true;
        self.proceed()
    }

    /// A full read, taken: publish it, start every resume point from its revision, and try the
    /// covering watch again (the role may have changed).
    fn take_read(&mut self, read: Read) -> Vec<Action> {
        if read.cluster_id != 0 {
            self.cluster_id = read.cluster_id;
        }
        let after_restore = std::mem::take(&mut self.restored);
        self.ever_read = true;
        self.delayed = false;
        let member = self.failover.current().to_owned();
        let next = Arc::new(after_read(
            &self.snapshot,
            read,
            self.user.as_deref(),
            &member,
            self.denied_recheck,
        ));
        // The periodic re-reads while keys are denied change nothing most of the time.
        if after_restore {
            // Which keys the restore changed, so the operator sees what the files lost or
            // gained (names only: values may be secrets).
            info!(
                revision = next.revision,
                keys = next.kvs.len(),
                changed = next.changed.len(),
                "read every watched key after the restore; keys that differ: {}",
                key_list(&next.changed)
            );
        } else if next.since == 0 || !next.changed.is_empty() {
            info!(
                revision = next.revision,
                keys = next.kvs.len(),
                changed = next.changed.len(),
                "read every watched key"
            );
        } else {
            debug!(
                revision = next.revision,
                "read every watched key; nothing changed"
            );
        }
        self.rev = next.revision;
        self.range_revs.clear();
        self.split = false;
        self.needs_read = false;
        self.snapshot = next.clone();
        let mut actions = vec![Action::Publish(next)];
        actions.extend(self.reached());
        actions.extend(self.proceed());
        actions
    }

    /// etcd answered a request on the session's endpoint: it is reachable.
    fn reached(&mut self) -> Vec<Action> {
        let member = self.failover.current().to_owned();
        if matches!(self.reach, Reach::Unreachable { .. }) {
            info!(
                reconfd.endpoint = %member,
                revision = self.rev,
                message_id = crate::logging::ETCD_RECOVERED,
                "etcd reachable again"
            );
        }
        self.set_reach(Reach::Reachable { member })
    }

    fn set_reach(&mut self, reach: Reach) -> Vec<Action> {
        if self.reach == reach {
            return Vec::new();
        }
        self.reach = reach.clone();
        vec![Action::Reach(reach)]
    }

    /// Opens the watch over every readable watched key (covering or split), each watcher from
    /// its resume point; with nothing readable, waits and reads again.
    fn watch(&mut self) -> Vec<Action> {
        self.progress_unanswered = false;
        let denied = self.snapshot.denied.clone();
        let allowed: Vec<String> = self
            .watched
            .iter()
            .filter(|w| !denied.contains(w))
            .cloned()
            .collect();
        if allowed.is_empty() {
            // Nothing may be watched: read again now and then (which also tells the watchdog
            // that etcd answers).
            self.phase = Phase::Idle;
            let wait = self.progress_every.min(self.denied_recheck);
            return vec![Action::Timer(Some(wait))];
        }
        let ranges = if self.split {
            key_ranges(&merge_prefixes(&allowed))
        } else {
            let (start, end) = covering_range(&allowed);
            vec![(start, Some(end))]
        };
        if self.range_revs.len() != ranges.len() {
            self.range_revs = vec![self.rev; ranges.len()];
        }
        let watchers = ranges
            .iter()
            .zip(&self.range_revs)
            .map(|((start, end), rev)| WatchRange {
                start: start.clone(),
                end: end.clone(),
                start_revision: rev + 1,
            })
            .collect();
        self.phase = Phase::Watching(Stream {
            allowed,
            ranges,
            ids: Vec::new(),
        });
        // While some watched key is denied, read again after a while.
        let recheck = (!denied.is_empty()).then_some(self.denied_recheck);
        vec![
            Action::Watch {
                watchers,
                progress_every: self.progress_every,
            },
            Action::Timer(recheck),
        ]
    }

    fn watch_opened(&mut self) {
        let Phase::Watching(stream) = &self.phase else {
            return;
        };
        debug!(
            from = self.rev + 1,
            ranges = stream.ranges.len(),
            "watching"
        );
        let member = self.failover.current();
        if self.following != member {
            info!(reconfd.endpoint = %member, revision = self.rev, "following etcd");
            self.following = member.to_owned();
        }
    }

    fn message(&mut self, message: WatchMessage) -> Vec<Action> {
        if !matches!(self.phase, Phase::Watching(_)) {
            return Vec::new();
        }
        // Any response answers: etcd is reachable (once per state change).
        self.progress_unanswered = false;
        let mut actions = self.reached();
        let Phase::Watching(stream) = &mut self.phase else {
            return actions;
        };
        if matches!(
            message,
            WatchMessage::Progress { .. } | WatchMessage::Events { .. }
        ) {
            // The watch delivered something: its failure now starts a new round.
            self.got_through = true;
            self.oversize_reread = false;
        }
        actions.extend(match message {
            WatchMessage::Created { watch_id } => {
                stream.ids.push(watch_id);
                Vec::new()
            }
            WatchMessage::Compacted {
                watch_id,
                created,
                compact_revision,
            } => {
                if created {
                    stream.ids.push(watch_id);
                }
                warn!(
                    revision = self.rev,
                    compacted = compact_revision,
                    "etcd compacted past our revision; reading everything again"
                );
                self.needs_read = true;
                self.proceed()
            }
            WatchMessage::Canceled {
                watch_id,
                created,
                reason,
            } => {
                if created {
                    stream.ids.push(watch_id);
                }
                self.canceled(created, &reason)
            }
            WatchMessage::Progress { watch_id, revision } => {
                self.progress(watch_id, revision);
                Vec::new()
            }
            WatchMessage::Events { watch_id, events } => self.events(watch_id, &events),
        });
        actions
    }

    /// A watcher was cancelled (or refused at creation) for `reason`.
    fn canceled(&mut self, created: bool, reason: &str) -> Vec<Action> {
        let Phase::Watching(stream) = &self.phase else {
            return Vec::new();
        };
        if reason.contains("invalid auth token") {
            self.phase = Phase::Refreshing;
            return vec![Action::RefreshToken];
        }
        let denied = reason.contains("permission denied");
        if denied && !self.split {
            let (start, end) = &stream.ranges[0];
            let end = end.as_deref().unwrap_or("");
            if !self.split_logged {
                warn!("etcd user may not watch [{start}, {end}), the range covering every watched key; watching each key, and the keys below it, on its own instead (a transaction that spans two of them may then be applied in two steps)");
                self.split_logged = true;
            } else {
                debug!("covering watch [{start}, {end}) refused again; split");
            }
            self.split = true;
            self.range_revs.clear();
            return self.proceed();
        }
        let what = stream.refused(created);
        if denied {
            // A key that was readable at the last read no longer is (etcd checks permissions
            // when a watch is created): read again to learn which. A second refusal before any
            // watcher answered is an error (backoff), and the read is still owed.
            self.needs_read = true;
            if !self.denial_reread {
                warn!("etcd refused the watch{what} ({reason}); reading every watched key again");
                self.denial_reread = true;
                return self.proceed();
            }
        }
        self.end_session(format!("watch was cancelled by etcd: {reason}{what}"))
    }

    /// A response without events. Only a watcher's own progress notification (sent once it
    /// caught up) says everything up to its header revision was delivered to it; the answer to
    /// a progress request (id -1) only shows etcd is alive.
    fn progress(&mut self, watch_id: i64, revision: Option<i64>) {
        let Phase::Watching(stream) = &self.phase else {
            return;
        };
        if let (Some(i), Some(revision)) = (stream.range_of(watch_id), revision) {
            self.range_revs[i] = self.range_revs[i].max(revision);
            self.rev = self.rev.max(revision);
            self.denial_reread = false;
        }
    }

    /// Events of one watcher: applied, and published as one snapshot.
    fn events(&mut self, watch_id: i64, events: &[KeyEvent]) -> Vec<Action> {
        let Phase::Watching(stream) = &self.phase else {
            return Vec::new();
        };
        let Some(range) = stream.range_of(watch_id) else {
            warn!(watch_id, "events for an unknown watcher ignored");
            return Vec::new();
        };
        self.denial_reread = false;
        let mut kvs = self.snapshot.kvs.clone();
        let mut not_text = self.snapshot.not_text.clone();
        let mut changed = Vec::new();
        let mut rev = self.range_revs[range];
        for ev in events {
            rev = rev.max(ev.mod_revision);
            if !stream.allowed.iter().any(|p| keys::covers(p, &ev.key)) {
                continue;
            }
            match &ev.value {
                Some(value) => kvs.insert(ev.key.clone(), value.clone()),
                None => kvs.remove(&ev.key),
            };
            if ev.not_text && ev.value.is_some() {
                not_text.insert(ev.key.clone());
            } else {
                not_text.remove(&ev.key);
            }
            changed.push(ev.key.clone());
        }
        // Events are not filtered by revision: each watcher resumes after what it applied, so
        // none comes twice.
        self.range_revs[range] = rev;
        self.rev = self.rev.max(rev);
        if changed.is_empty() {
            return Vec::new();
        }
        changed.sort();
        changed.dedup();
        debug!(
            revision = rev,
            changed = changed.len(),
            "applied watch events"
        );
        let next = Arc::new(Snapshot {
            revision: self.rev,
            seq: self.snapshot.seq + 1,
            kvs,
            since: self.snapshot.seq,
            changed,
            denied: self.snapshot.denied.clone(),
            not_text,
        });
        self.snapshot = next.clone();
        vec![Action::Publish(next)]
    }

    fn timer_fired(&mut self) -> Vec<Action> {
        match self.phase {
            // The denied-keys recheck, or the wait while nothing may be watched: periodic per
            // host, so not delayed again.
            Phase::Watching(_) | Phase::Idle => {
                self.needs_read = true;
                self.delayed = true;
                self.proceed()
            }
            Phase::Delaying => {
                self.delayed = true;
                self.proceed()
            }
            Phase::BackingOff => self.connect(),
            // A timer armed in an earlier phase; each phase that waits arms its own.
            Phase::Connecting | Phase::Reading | Phase::Refreshing => Vec::new(),
        }
    }

    /// The session failed with `message`: the next endpoint now, or after a backoff once every
    /// endpoint failed in a row. Each distinct message is logged once.
    fn end_session(&mut self, message: String) -> Vec<Action> {
        self.confirming = None;
        let endpoint = self.failover.current().to_owned();
        if self.last_warning.as_deref() != Some(message.as_str()) {
            warn!(reconfd.endpoint = %endpoint, revision = self.rev, "{message}; trying the next endpoint");
            self.last_warning = Some(message.clone());
        }
        let got_through = std::mem::take(&mut self.got_through);
        let wait = match self.failover.failed(got_through) {
            Next::Now => return self.connect(),
            Next::Backoff(wait) => wait,
        };
        let mut actions = Vec::new();
        if self.reach.error() != Some(message.as_str()) {
            error!(
                endpoints = %self.failover.all().join(","),
                revision = self.rev,
                message_id = crate::logging::ETCD_UNREACHABLE,
                "no etcd endpoint can be followed ({message}); retrying with backoff, files stay as they are"
            );
            let last_member = self.reach.member().map(str::to_owned);
            actions = self.set_reach(Reach::Unreachable {
                error: message,
                last_member,
            });
        }
        self.phase = Phase::BackingOff;
        actions.push(Action::Backoff(wait));
        if self.rediscover {
            actions.push(Action::Rediscover);
        }
        actions
    }

    /// New endpoints from DNS SRV: tried from the first after the backoff; the backoff goes on
    /// growing (they are asked for only after a failed round).
    fn discovered(&mut self, endpoints: Vec<String>) {
        if endpoints.is_empty() || endpoints == self.failover.all() {
            return;
        }
        info!(endpoints = %endpoints.join(","), "the etcd endpoints changed in DNS SRV");
        self.failover.replace(&endpoints);
        self.preference = Preference::new(&endpoints, self.prefer_first_after);
    }
}

/// How an answer's header compares with what the local copy came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Check {
    /// The same cluster, at or past the applied revision (or nothing to compare).
    Same,
    /// Behind the applied revision in an answer that may lag: confirm first.
    Unsure,
    /// Another cluster, or a linearizable answer behind the applied revision.
    Restored,
}

/// Up to 20 keys, comma-separated, and how many more there are.
fn key_list(keys: &[String]) -> String {
    const SHOWN: usize = 20;
    let mut text = keys
        .iter()
        .take(SHOWN)
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(", ");
    if keys.len() > SHOWN {
        text.push_str(&format!(" (and {} more)", keys.len() - SHOWN));
    }
    if text.is_empty() {
        text.push_str("none");
    }
    text
}

/// A random delay in `[0, max]`.
fn pick_delay(max: Duration) -> Duration {
    let millis = u64::try_from(max.as_millis()).unwrap_or(u64::MAX);
    Duration::from_millis(rand::random::<u64>() % millis.saturating_add(1))
}

/// The key range `[start, end)` covering every watched key: a key `W` covers `W` and `W/…`,
/// all of which sort in `[W, W + "0")` (`'0'` is the byte after `'/'`).
pub fn covering_range(watched: &[String]) -> (String, String) {
    let merged = merge_prefixes(watched);
    let start = merged.first().cloned().unwrap_or_else(|| "/".into());
    let end = merged
        .iter()
        .map(|w| {
            if w == "/" {
                "0".to_owned()
            } else {
                format!("{w}0")
            }
        })
        .max()
        .unwrap_or_else(|| "0".into());
    (start, end)
}

/// The snapshot after a full read: the successor of `current` holding what was read, with the
/// read's denied keys. Logs once when the set of denied keys changes, naming `user` and
/// `endpoints`, and that they are tried again every `retried_every`.
pub fn after_read(
    current: &Snapshot,
    read: Read,
    user: Option<&str>,
    endpoints: &str,
    retried_every: Duration,
) -> Snapshot {
    let revision = if read.snapshot.revision > 0 {
        read.snapshot.revision
    } else {
        // Nothing could be read (every watched key is denied): keep the last revision.
        current.revision
    };
    let not_text = read.snapshot.not_text;
    let mut next = current
        .successor(revision, read.snapshot.kvs)
        .with_not_text(not_text);
    if *current.denied != *read.denied {
        if read.denied.is_empty() {
            info!("the etcd user may read every watched key again");
        } else {
            let e = EtcdError::Denied {
                user: user.map(str::to_owned),
                keys: read.denied.clone(),
                endpoints: endpoints.to_owned(),
            };
            error!(
                "{e}; resources watching these keys are not rendered (tried again every {})",
                humantime::format_duration(retried_every)
            );
        }
        next.denied = read.denied.into();
    }
    next
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod preference_tests;

#[cfg(test)]
mod discovery_tests;
