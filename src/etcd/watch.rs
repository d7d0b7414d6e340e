//! The etcd task: keeps a local copy of every watched key and follows etcd's watch, so no
//! etcd read happens per change in steady state and no change is ever missed.
//!
//! - At start (and after a compaction) it reads every watched key at one revision R.
//! - It watches, on one stream, the smallest key range covering every watched key, from R+1.
//!   One watcher means every response is a whole revision, so each published snapshot is a
//!   consistent state; events for keys in the range but not watched are dropped here.
//! - Least-privilege users: a watched key the etcd user may not read is listed in the
//!   snapshot's `denied` (its resources do not render; the others do) and read again every
//!   minute. When the user may not read the covering range (it spans keys of other
//!   services), the watch is split, on the same stream, into one watcher per watched key and
//!   one per its `/` children, each resuming from its own revision; a transaction spanning
//!   two of those ranges may then reach the local copy in two steps. The covering watch is
//!   tried again after each full read.
//! - Any stream error, end of stream or reconnect resumes from the last applied revision + 1.
//!   A compacted start revision triggers a full re-read at a fresh revision.
//! - It publishes an immutable [`Snapshot`] per applied revision on a `watch` channel; the
//!   snapshot lists the keys that changed since the previous one.
//!
//! Waits on: the etcd watch stream, a backoff timer, cancellation. Sends: snapshots.

use std::sync::Arc;
use std::time::Duration;

use etcd_client::{EventType, WatchOptions};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use super::{connect, EtcdError};
use crate::config::EtcdSettings;
use crate::keys;
use crate::store::{merge_prefixes, Snapshot};

/// Reconnect backoff bounds.
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(10);

/// How often watched keys the etcd user may not read are tried again, so a role granted
/// later takes effect without a restart.
const DENIED_RECHECK: Duration = Duration::from_secs(60);

/// How the etcd task is doing, for STATUS= and the watchdog.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Health {
    /// When etcd last answered (a watch response, a progress report or a read).
    pub alive: Option<std::time::Instant>,
    /// The current error while etcd cannot be followed; `None` while all is well.
    pub error: Option<String>,
    /// The endpoints in use.
    pub endpoints: String,
}

/// How often the follower asks etcd for a progress report, so a stalled watch shows up as
/// silence (and stops the watchdog) even when no key changes.
pub fn progress_interval() -> Duration {
    match sd_notify::watchdog_enabled() {
        Some(w) => (w / 4).clamp(Duration::from_millis(250), Duration::from_secs(30)),
        None => Duration::from_secs(30),
    }
}

/// Why one watch session ended.
#[derive(Debug, thiserror::Error)]
enum SessionEnd {
    #[error(transparent)]
    Etcd(#[from] EtcdError),
    #[error("watch on {endpoints} failed: {source}")]
    Watch {
        endpoints: String,
        source: etcd_client::Error,
    },
    #[error("watch on {0} ended")]
    Closed(String),
    #[error("watch was cancelled by etcd: {0}")]
    Cancelled(String),
    #[error("cancelled")]
    Shutdown,
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
    let mut watched = watched;
    watched.sort();
    watched.dedup();
    let mut state = State {
        rev: 0,
        needs_read: true,
        healthy: None,
        health,
        progressed: false,
        following: String::new(),
        split: false,
        range_revs: Vec::new(),
        split_logged: false,
        denial_reread: false,
    };
    // One member at a time: etcd-client balances over every endpoint and keeps dead ones
    // (rust-deps.md §2.1), so failover is ours. A session that fails moves to the next
    // endpoint at once; only after every endpoint failed in a row do we back off.
    let endpoints = if settings.endpoints.is_empty() {
        vec![crate::config::DEFAULT_ENDPOINT.to_owned()]
    } else {
        settings.endpoints.clone()
    };
    let mut index = 0usize;
    let mut failed_in_row = 0usize;
    let mut backoff = BACKOFF_MIN;
    let mut last_warning: Option<String> = None;
    loop {
        let endpoint = endpoints[index % endpoints.len()].clone();
        let mut one = settings.clone();
        one.endpoints = vec![endpoint.clone()];
        state.progressed = false;
        let result = tokio::select! {
            _ = cancel.cancelled() => return,
            r = session(&one, &watched, &mut state, &tx, &cancel) => r,
        };
        let e = match result {
            Err(SessionEnd::Shutdown) => return,
            Err(e) => e,
            Ok(()) => continue,
        };
        if state.progressed {
            failed_in_row = 0;
            backoff = BACKOFF_MIN;
        }
        failed_in_row += 1;
        index += 1;
        let message = e.to_string();
        if last_warning.as_deref() != Some(message.as_str()) {
            warn!(reconfd.endpoint = %endpoint, revision = state.rev, "{message}; trying the next endpoint");
            last_warning = Some(message.clone());
        }
        if failed_in_row < endpoints.len() {
            continue;
        }
        if state.healthy.as_deref() != Some(message.as_str()) {
            error!(
                endpoints = %endpoints.join(","),
                revision = state.rev,
                message_id = crate::logging::ETCD_UNREACHABLE,
                "no etcd endpoint can be followed ({message}); retrying with backoff, files stay as they are"
            );
            state
                .health
                .send_modify(|h| h.error = Some(message.clone()));
            state.healthy = Some(message);
        }
        let jitter =
            Duration::from_millis(rand::random::<u64>() % (backoff.as_millis() as u64 / 2 + 1));
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(backoff + jitter) => {}
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
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
    health.send_modify(|h| h.endpoints = settings.endpoints.join(","));
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
                    h.alive = Some(std::time::Instant::now());
                    h.error = None;
                    h.endpoints = read.endpoint.clone();
                });
                let current = tx.borrow().clone();
                if current.seq == 0
                    || current.kvs != read.snapshot.kvs
                    || *current.denied != *read.denied
                {
                    publish_read(&settings, &tx, read, every);
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
                    health.send_modify(|h| h.error = Some(message.clone()));
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

/// What survives from one session to the next.
struct State {
    /// Last revision applied to the local copy; the watch resumes from `rev + 1`.
    rev: i64,
    /// A full read is needed (start, compaction).
    needs_read: bool,
    /// `None` while healthy; the last error message while failing, so it is logged once.
    healthy: Option<String>,
    /// Published for the supervisor (STATUS=, watchdog).
    health: watch::Sender<Health>,
    /// The current session got as far as watching (so its failure is not a failed connect).
    progressed: bool,
    /// The endpoint last followed, to log a switch once.
    following: String,
    /// The covering range was refused: watch each key on its own ([`super::key_ranges`]).
    split: bool,
    /// With `split`, the last revision applied by each range's watcher, so each resumes
    /// from its own (a response of one watcher says nothing about the others).
    range_revs: Vec<i64>,
    /// The split was logged (it is tried again after each full read, logged once).
    split_logged: bool,
    /// A refused split watcher sent us to read again (permissions changed); a second refusal
    /// before any watcher answered is an error, retried with backoff.
    denial_reread: bool,
}

/// Publishes a full read as the successor of the current snapshot, logging once when the
/// set of watched keys the user may not read changes.
fn publish_read(
    settings: &EtcdSettings,
    tx: &watch::Sender<Arc<Snapshot>>,
    read: super::Read,
    retried_every: Duration,
) -> Arc<Snapshot> {
    let current = tx.borrow().clone();
    let revision = if read.snapshot.revision > 0 {
        read.snapshot.revision
    } else {
        // Nothing could be read (every watched key is denied): keep the last revision.
        current.revision
    };
    let mut next = current.successor(revision, read.snapshot.kvs);
    if *current.denied != *read.denied {
        if read.denied.is_empty() {
            info!("the etcd user may read every watched key again");
        } else {
            error!(
                "{}; resources watching these keys are not rendered (tried again every {})",
                super::denied(settings, read.denied.clone()),
                humantime::format_duration(retried_every)
            );
        }
        next.denied = read.denied.into();
    }
    let next = Arc::new(next);
    tx.send_replace(next.clone());
    next
}

async fn session(
    settings: &EtcdSettings,
    watched: &[String],
    state: &mut State,
    tx: &watch::Sender<Arc<Snapshot>>,
    cancel: &CancellationToken,
) -> Result<(), SessionEnd> {
    let endpoints = settings.endpoints.join(",");
    let mut client = connect(settings).await?;
    loop {
        if state.needs_read {
            let read = super::read_allowed(&mut client, settings, watched).await?;
            let next = publish_read(settings, tx, read, DENIED_RECHECK);
            // The periodic re-reads while keys are denied change nothing most of the time.
            if next.since == 0 || !next.changed.is_empty() {
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
            state.rev = next.revision;
            state.range_revs.clear();
            // The role may have changed: try the single covering watch again.
            state.split = false;
            state.needs_read = false;
            state.alive();
        }
        if state.healthy.take().is_some() {
            info!(reconfd.endpoint = %endpoints, revision = state.rev, message_id = crate::logging::ETCD_RECOVERED, "etcd reachable again");
        }
        state.health.send_modify(|h| {
            h.error = None;
            h.endpoints = endpoints.clone();
        });
        let denied = tx.borrow().denied.clone();
        let allowed: Vec<String> = watched
            .iter()
            .filter(|w| !denied.contains(w))
            .cloned()
            .collect();
        // A minute's wait, then a full read, while some watched key is denied.
        let recheck = async {
            if denied.is_empty() {
                std::future::pending::<()>().await;
            }
            tokio::time::sleep(DENIED_RECHECK).await;
        };
        tokio::pin!(recheck);
        if allowed.is_empty() {
            // Nothing may be watched: read again now and then (which also tells the watchdog
            // that etcd answers).
            tokio::select! {
                _ = cancel.cancelled() => return Err(SessionEnd::Shutdown),
                _ = tokio::time::sleep(progress_interval().min(DENIED_RECHECK)) => {}
            }
            state.needs_read = true;
            continue;
        }
        let ranges: Vec<(String, Option<String>)> = if state.split {
            super::key_ranges(&merge_prefixes(&allowed))
        } else {
            let (start, end) = covering_range(&allowed);
            vec![(start, Some(end))]
        };
        if state.range_revs.len() != ranges.len() {
            state.range_revs = vec![state.rev; ranges.len()];
        }
        let watch_err = |source| SessionEnd::Watch {
            endpoints: endpoints.clone(),
            source,
        };
        let options = |end: &Option<String>, from: i64| {
            let o = WatchOptions::new()
                .with_start_revision(from + 1)
                .with_progress_notify();
            match end {
                Some(end) => o.with_range(end.as_str()),
                None => o,
            }
        };
        let (first_start, first_end) = &ranges[0];
        let stream = client
            .watch(
                first_start.as_str(),
                Some(options(first_end, state.range_revs[0])),
            )
            .await
            .map_err(watch_err)?;
        let (mut requests, mut stream) = stream.split();
        for ((start, end), from) in ranges.iter().zip(&state.range_revs).skip(1) {
            requests
                .watch(start.as_str(), Some(options(end, *from)))
                .await
                .map_err(watch_err)?;
        }
        // etcd answers a stream's create requests in order: the n-th "created" response
        // carries the id of the n-th range's watcher.
        let mut ids: Vec<i64> = Vec::with_capacity(ranges.len());
        // Not at once: etcd 3.4 answers a progress request with its current revision even
        // while a new watcher is still catching up, and a session that ended right then would
        // resume after events it never delivered.
        let every = progress_interval();
        let mut progress = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        progress.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        debug!(from = state.rev + 1, ranges = ranges.len(), "watching");
        state.progressed = true;
        if state.following != endpoints {
            info!(reconfd.endpoint = %endpoints, revision = state.rev, "following etcd");
            state.following = endpoints.clone();
        }
        loop {
            let msg = tokio::select! {
                _ = cancel.cancelled() => return Err(SessionEnd::Shutdown),
                _ = progress.tick() => {
                    requests.request_progress().await.map_err(watch_err)?;
                    continue;
                }
                _ = &mut recheck => {
                    state.needs_read = true;
                    break;
                }
                m = stream.message() => m,
            };
            let resp = match msg {
                Ok(Some(r)) => r,
                Ok(None) => return Err(SessionEnd::Closed(endpoints.clone())),
                Err(source) => return Err(watch_err(source)),
            };
            state.alive();
            if resp.created() {
                ids.push(resp.watch_id());
            }
            if resp.compact_revision() > 0 {
                warn!(
                    revision = state.rev,
                    compacted = resp.compact_revision(),
                    "etcd compacted past our revision; reading everything again"
                );
                state.needs_read = true;
                break;
            }
            if resp.canceled() {
                let reason = resp.cancel_reason().to_owned();
                if reason.contains("invalid auth token") {
                    client.refresh_token().await.map_err(watch_err)?;
                    break;
                }
                if reason.contains("permission denied") && !state.split {
                    let (start, end) = &ranges[0];
                    let end = end.as_deref().unwrap_or("");
                    if !state.split_logged {
                        warn!("etcd user may not watch [{start}, {end}), the range covering every watched key; watching each key, and the keys below it, on its own instead (a transaction that spans two of them may then be applied in two steps)");
                        state.split_logged = true;
                    } else {
                        debug!("covering watch [{start}, {end}) refused again; split");
                    }
                    state.split = true;
                    state.range_revs.clear();
                    break;
                }
                // The refused watcher: a refusal answers its create request, in order.
                let what = match ids.len().checked_sub(1).and_then(|i| ranges.get(i)) {
                    Some((start, Some(end))) if resp.created() => format!(" of [{start}, {end})"),
                    Some((key, None)) if resp.created() => format!(" of {key}"),
                    _ => String::new(),
                };
                if reason.contains("permission denied") {
                    // A key that was readable at the last read no longer is (etcd checks
                    // permissions when a watch is created): read again to learn which. A
                    // second refusal before any watcher answered is an error (backoff), and
                    // the read is still owed.
                    state.needs_read = true;
                    if !state.denial_reread {
                        warn!("etcd refused the watch{what} ({reason}); reading every watched key again");
                        state.denial_reread = true;
                        break;
                    }
                }
                return Err(SessionEnd::Cancelled(format!("{reason}{what}")));
            }
            let which = ids.iter().position(|id| *id == resp.watch_id());
            if resp.events().is_empty() {
                if resp.created() {
                    // The header of a "created" response is etcd's current revision, not how
                    // far this watcher got: its catch-up events may still follow.
                    continue;
                }
                // A watcher's own progress notification (sent only once it caught up):
                // everything up to the header revision was delivered to it. The answer to
                // a progress request (id -1) only shows etcd is alive: etcd 3.4 may send it
                // ahead of events already queued, so it moves no resume point.
                if let (Some(i), Some(h)) = (which, resp.header()) {
                    state.range_revs[i] = state.range_revs[i].max(h.revision());
                    state.rev = state.rev.max(h.revision());
                    state.denial_reread = false;
                }
                continue;
            }
            let Some(i) = which else {
                warn!(
                    watch_id = resp.watch_id(),
                    "events for an unknown watcher ignored"
                );
                continue;
            };
            state.denial_reread = false;
            apply(&allowed, state, i, tx, &resp);
        }
    }
}

impl State {
    /// etcd answered just now.
    fn alive(&self) {
        // Read by the supervisor at its watchdog tick; not worth waking it for each event.
        self.health.send_if_modified(|h| {
            h.alive = Some(std::time::Instant::now());
            false
        });
    }
}

/// Applies one watch response of range `range`'s watcher (one or more whole revisions, of
/// that range) and publishes the result.
///
/// Events are not filtered by revision: each watcher resumes after what it applied, so none
/// comes twice; and etcd 3.4 may answer a progress request with its current revision before
/// an unsynced watcher's catch-up events, so a revision learnt from progress must not hide
/// events.
fn apply(
    allowed: &[String],
    state: &mut State,
    range: usize,
    tx: &watch::Sender<Arc<Snapshot>>,
    resp: &etcd_client::WatchResponse,
) {
    let current = tx.borrow().clone();
    let mut kvs = current.kvs.clone();
    let mut changed = Vec::new();
    let mut rev = state.range_revs[range];
    for ev in resp.events() {
        let Some(kv) = ev.kv() else { continue };
        rev = rev.max(kv.mod_revision());
        let key = String::from_utf8_lossy(kv.key()).into_owned();
        if !allowed.iter().any(|p| keys::covers(p, &key)) {
            continue;
        }
        match ev.event_type() {
            EventType::Put => {
                kvs.insert(
                    key.clone(),
                    String::from_utf8_lossy(kv.value()).into_owned(),
                );
            }
            EventType::Delete => {
                kvs.remove(&key);
            }
        }
        changed.push(key);
    }
    state.range_revs[range] = rev;
    state.rev = state.rev.max(rev);
    if changed.is_empty() {
        return;
    }
    changed.sort();
    changed.dedup();
    debug!(
        revision = rev,
        changed = changed.len(),
        "applied watch events"
    );
    tx.send_replace(Arc::new(Snapshot {
        revision: state.rev,
        seq: current.seq + 1,
        kvs,
        since: current.seq,
        changed,
        denied: current.denied.clone(),
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn covering_range_spans_every_watched_key() {
        let w = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            covering_range(&w(&["/services/apache"])),
            ("/services/apache".into(), "/services/apache0".into())
        );
        assert_eq!(
            covering_range(&w(&["/upstream", "/subdomain"])),
            ("/subdomain".into(), "/upstream0".into())
        );
        assert_eq!(covering_range(&w(&["/"])), ("/".into(), "0".into()));
        let (s, e) = covering_range(&w(&["/a/b"]));
        for k in ["/a/b", "/a/b/c", "/a/b/c/d"] {
            assert!(k >= s.as_str() && k < e.as_str(), "{k}");
        }
    }

    #[test]
    fn successor_lists_what_changed() {
        let a = Snapshot {
            revision: 5,
            seq: 3,
            kvs: [
                ("/a".to_string(), "1".to_string()),
                ("/b".to_string(), "2".to_string()),
            ]
            .into_iter()
            .collect(),
            ..Default::default()
        };
        let b = a.successor(
            9,
            [
                ("/a".to_string(), "1".to_string()),
                ("/c".to_string(), "3".to_string()),
            ]
            .into_iter()
            .collect(),
        );
        assert_eq!((b.since, b.seq, b.revision), (3, 4, 9));
        let mut changed = b.changed.clone();
        changed.sort();
        assert_eq!(changed, vec!["/b", "/c"]);
        assert!(b.touches(&["/c".into()]));
        assert!(!b.touches(&["/a".into()]));
    }
}
