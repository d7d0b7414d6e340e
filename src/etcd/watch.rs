//! The etcd task: keeps a local copy of every watched key and follows etcd's watch, so no
//! etcd read happens per change in steady state and no change is ever missed.
//!
//! - At start (and after a compaction) it reads every watched key at one revision R.
//! - It watches, on one stream, the smallest key range covering every watched key, from R+1.
//!   One watcher means every response is a whole revision, so each published snapshot is a
//!   consistent state; events for keys in the range but not watched are dropped here.
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

use super::{connect, merge_prefixes, EtcdError, Snapshot};
use crate::config::EtcdSettings;
use crate::keys;

/// Reconnect backoff bounds.
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(10);

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
    let prefixes = merge_prefixes(&watched);
    let mut state = State {
        rev: 0,
        needs_read: true,
        healthy: None,
        health,
        progressed: false,
        following: String::new(),
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
            r = session(&one, &prefixes, &mut state, &tx, &cancel) => r,
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
    let prefixes = merge_prefixes(&watched);
    let mut failing: Option<String> = None;
    health.send_modify(|h| h.endpoints = settings.endpoints.join(","));
    loop {
        let result = async {
            let r = super::read_any(&settings, &prefixes).await?;
            if !r.denied.is_empty() {
                return Err(super::denied(&settings, r.denied));
            }
            Ok::<_, EtcdError>(r.snapshot)
        };
        let result = tokio::select! {
            _ = cancel.cancelled() => return,
            r = result => r,
        };
        match result {
            Ok(fresh) => {
                if failing.take().is_some() {
                    info!(
                        revision = fresh.revision,
                        message_id = crate::logging::ETCD_RECOVERED,
                        "etcd reachable again"
                    );
                }
                health.send_modify(|h| {
                    h.alive = Some(std::time::Instant::now());
                    h.error = None;
                });
                let current = tx.borrow().clone();
                if current.revision == 0 || current.kvs != fresh.kvs {
                    tx.send_replace(Arc::new(current.successor(fresh.revision, fresh.kvs)));
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
}

async fn session(
    settings: &EtcdSettings,
    prefixes: &[String],
    state: &mut State,
    tx: &watch::Sender<Arc<Snapshot>>,
    cancel: &CancellationToken,
) -> Result<(), SessionEnd> {
    let endpoints = settings.endpoints.join(",");
    let mut client = connect(settings).await?;
    loop {
        if state.needs_read {
            let fresh = super::read_with(&mut client, settings, prefixes).await?;
            let current = tx.borrow().clone();
            let next = current.successor(fresh.revision, fresh.kvs);
            info!(
                revision = next.revision,
                keys = next.kvs.len(),
                changed = next.changed.len(),
                "read every watched key"
            );
            state.rev = next.revision;
            state.needs_read = false;
            tx.send_replace(Arc::new(next));
            state.alive();
        }
        if state.healthy.take().is_some() {
            info!(reconfd.endpoint = %endpoints, revision = state.rev, message_id = crate::logging::ETCD_RECOVERED, "etcd reachable again");
        }
        state.health.send_modify(|h| {
            h.error = None;
            h.endpoints = endpoints.clone();
        });
        let (start, end) = covering_range(prefixes);
        let opts = WatchOptions::new()
            .with_range(end)
            .with_start_revision(state.rev + 1)
            .with_progress_notify();
        let stream = client
            .watch(start, Some(opts))
            .await
            .map_err(|source| SessionEnd::Watch {
                endpoints: endpoints.clone(),
                source,
            })?;
        let (mut requests, mut stream) = stream.split();
        let mut progress = tokio::time::interval(progress_interval());
        progress.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        debug!(from = state.rev + 1, "watching");
        state.progressed = true;
        if state.following != endpoints {
            info!(reconfd.endpoint = %endpoints, revision = state.rev, "following etcd");
            state.following = endpoints.clone();
        }
        loop {
            let msg = tokio::select! {
                _ = cancel.cancelled() => return Err(SessionEnd::Shutdown),
                _ = progress.tick() => {
                    requests.request_progress().await.map_err(|source| SessionEnd::Watch {
                        endpoints: endpoints.clone(),
                        source,
                    })?;
                    continue;
                }
                m = stream.message() => m,
            };
            let resp = match msg {
                Ok(Some(r)) => r,
                Ok(None) => return Err(SessionEnd::Closed(endpoints.clone())),
                Err(source) => {
                    return Err(SessionEnd::Watch {
                        endpoints: endpoints.clone(),
                        source,
                    })
                }
            };
            state.alive();
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
                    client
                        .refresh_token()
                        .await
                        .map_err(|source| SessionEnd::Watch {
                            endpoints: endpoints.clone(),
                            source,
                        })?;
                    break;
                }
                return Err(SessionEnd::Cancelled(reason));
            }
            if resp.events().is_empty() {
                // Progress notification: everything up to the header revision was delivered.
                if let Some(h) = resp.header() {
                    state.rev = state.rev.max(h.revision());
                }
                continue;
            }
            apply(prefixes, state, tx, &resp);
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

/// Applies one watch response (one or more whole revisions) and publishes the result.
fn apply(
    prefixes: &[String],
    state: &mut State,
    tx: &watch::Sender<Arc<Snapshot>>,
    resp: &etcd_client::WatchResponse,
) {
    let current = tx.borrow().clone();
    let mut kvs = current.kvs.clone();
    let mut changed = Vec::new();
    let mut rev = state.rev;
    for ev in resp.events() {
        let Some(kv) = ev.kv() else { continue };
        rev = rev.max(kv.mod_revision());
        let key = String::from_utf8_lossy(kv.key()).into_owned();
        if !prefixes.iter().any(|p| keys::covers(p, &key)) {
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
    state.rev = rev;
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
        revision: rev,
        kvs,
        since: current.revision,
        changed,
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
        assert_eq!((b.since, b.revision), (5, 9));
        let mut changed = b.changed.clone();
        changed.sort();
        assert_eq!(changed, vec!["/b", "/c"]);
        assert!(b.touches(&["/c".into()]));
        assert!(!b.touches(&["/a".into()]));
    }
}
