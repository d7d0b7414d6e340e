//! What is known right now about each resource and etcd, for `reconfd status`, `/healthz` and
//! `/readyz`: kept whether or not metrics are served. Never holds rendered contents or
//! secrets: only states, times and the first line of the last error.

use std::collections::BTreeMap;
use std::sync::{LazyLock, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::gauge::ConstGauge;

use super::Outcome;

/// The longest last error kept, in characters.
const ERROR_CHARS: usize = 200;

/// One resource's recent history.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Detail {
    /// When the destination was last replaced.
    pub last_install: Option<SystemTime>,
    /// When the last reconcile ended.
    pub last_attempt: Option<SystemTime>,
    /// When a change of its keys last arrived.
    pub last_change: Option<SystemTime>,
    /// The last reconcile's error (first line, shortened), while it is failing.
    pub last_error: Option<String>,
}

impl Detail {
    /// A change arrived after the last reconcile ended: it waits for the batcher.
    pub fn change_pending(&self) -> bool {
        match (self.last_change, self.last_attempt) {
            (Some(c), Some(a)) => c > a,
            (Some(_), None) => true,
            _ => false,
        }
    }
}

#[derive(Default)]
struct State {
    details: BTreeMap<String, Detail>,
    /// The supervisor's board: resource → state name; `None` until it first says.
    states: Option<Vec<(String, &'static str)>>,
    /// The etcd task's health and how long a silence is tolerated; `None` without an etcd
    /// task (nothing to watch).
    health: Option<(HealthProbe, Duration)>,
}

/// What `/healthz` needs to know of the etcd task, asked when a request comes.
#[derive(Debug, Clone, Default)]
pub struct EtcdHealth {
    /// When etcd last answered; `None` until it has.
    pub last_answer: Option<Instant>,
    /// The member followed, when one is.
    pub member: Option<String>,
    /// Why etcd cannot be followed, when it cannot.
    pub error: Option<String>,
}

/// Reads the running etcd task's health (the supervisor wires it to the task's channel).
pub type HealthProbe = Box<dyn Fn() -> EtcdHealth + Send + Sync>;

static STATE: LazyLock<Mutex<State>> = LazyLock::new(Mutex::default);

fn state() -> MutexGuard<'static, State> {
    STATE.lock().unwrap_or_else(|p| p.into_inner())
}

/// A reconcile of `resource` ended; whether it was a retry (the one before had failed).
pub(super) fn reconciled(resource: &str, outcome: &Outcome) -> bool {
    let now = SystemTime::now();
    let mut s = state();
    let d = s.details.entry(resource.to_owned()).or_default();
    let retry = d.last_error.is_some();
    d.last_attempt = Some(now);
    match outcome {
        Outcome::Installed => {
            d.last_install = Some(now);
            d.last_error = None;
        }
        Outcome::Failed(_, error) => d.last_error = Some(one_line(error)),
        _ => d.last_error = None,
    }
    retry
}

/// The first line of `text`, at most [`ERROR_CHARS`] characters.
fn one_line(text: &str) -> String {
    let line = text.lines().next().unwrap_or_default();
    if line.chars().count() <= ERROR_CHARS {
        return line.to_owned();
    }
    let mut s: String = line.chars().take(ERROR_CHARS).collect();
    s.push('…');
    s
}

pub(super) fn changed(resource: &str) {
    state()
        .details
        .entry(resource.to_owned())
        .or_default()
        .last_change = Some(SystemTime::now());
}

pub(super) fn set_states(states: &[(String, &'static str)]) {
    let mut s = state();
    s.details
        .retain(|name, _| states.iter().any(|(n, _)| n == name));
    s.states = Some(states.to_vec());
}

pub(super) fn set_state(resource: &str, current: &'static str) {
    let mut s = state();
    if let Some(states) = s.states.as_mut() {
        match states.iter_mut().find(|(n, _)| n == resource) {
            Some(entry) => entry.1 = current,
            None => states.push((resource.to_owned(), current)),
        }
    }
}

/// `resource`'s recent history.
pub fn detail(resource: &str) -> Detail {
    state().details.get(resource).cloned().unwrap_or_default()
}

/// The etcd task of the running generation and the silence `/healthz` tolerates; `None`
/// when nothing is watched.
pub fn set_health(health: Option<(HealthProbe, Duration)>) {
    state().health = health;
}

/// `/healthz`: `Ok` while etcd answered within the window (or nothing is watched), else
/// why not.
pub fn healthy() -> Result<String, String> {
    let s = state();
    let Some((probe, window)) = &s.health else {
        return Ok("ok: no keys to watch\n".into());
    };
    let h = probe();
    match h.last_answer {
        Some(t) if t.elapsed() < *window => Ok(format!(
            "ok: etcd answered {:.1}s ago{}\n",
            t.elapsed().as_secs_f64(),
            h.member.map(|m| format!(" via {m}")).unwrap_or_default()
        )),
        Some(t) => Err(format!(
            "etcd last answered {:.0}s ago (limit {}s){}\n",
            t.elapsed().as_secs_f64(),
            window.as_secs(),
            h.error.map(|e| format!(": {e}")).unwrap_or_default()
        )),
        None => Err(format!(
            "etcd has not answered yet{}\n",
            h.error.map(|e| format!(": {e}")).unwrap_or_default()
        )),
    }
}

/// `/readyz`: `Ok` once every resource finished its first reconcile and none is failing or
/// held; else the resources that are not ready, one per line.
pub fn ready() -> Result<String, String> {
    readiness(state().states.as_deref())
}

/// [`ready`] of a board (`None`: the supervisor has not published one yet).
fn readiness(states: Option<&[(String, &'static str)]>) -> Result<String, String> {
    let Some(states) = states else {
        return Err("starting: the resources are not loaded yet\n".into());
    };
    let not: Vec<String> = states
        .iter()
        .filter(|(_, st)| !matches!(*st, "in_sync" | "deferred"))
        .map(|(n, st)| format!("{n}: {st}\n"))
        .collect();
    if not.is_empty() {
        Ok(format!("ready: {} resources\n", states.len()))
    } else {
        Err(not.concat())
    }
}

/// `reconfd_etcd_last_answer_age_seconds`, computed at scrape time.
#[derive(Debug)]
pub(super) struct EtcdAge;

impl Collector for EtcdAge {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let age = {
            let s = state();
            let Some((probe, _)) = &s.health else {
                return Ok(());
            };
            let last = probe().last_answer;
            match last {
                Some(t) => t.elapsed().as_secs_f64(),
                None => return Ok(()),
            }
        };
        let g = ConstGauge::new(age);
        let m = encoder.encode_descriptor(
            "reconfd_etcd_last_answer_age_seconds",
            "Seconds since etcd last answered (an event, a progress report or a read)",
            None,
            g.metric_type(),
        )?;
        g.encode(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_once_every_resource_is_in_sync_or_deferred() {
        assert!(readiness(None).unwrap_err().starts_with("starting"));
        let board = |s: &[(&str, &'static str)]| -> Vec<(String, &'static str)> {
            s.iter().map(|(n, st)| (n.to_string(), *st)).collect()
        };
        let ok = board(&[("a", "in_sync"), ("b", "deferred")]);
        assert_eq!(readiness(Some(&ok)).unwrap(), "ready: 2 resources\n");
        let not = board(&[
            ("a", "pending"),
            ("b", "in_sync"),
            ("c", "failing"),
            ("d", "held"),
        ]);
        assert_eq!(
            readiness(Some(&not)).unwrap_err(),
            "a: pending\nc: failing\nd: held\n"
        );
    }

    #[test]
    fn a_change_after_the_last_attempt_is_pending_and_errors_are_one_short_line() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(100);
        let mut d = Detail {
            last_change: Some(t),
            ..Detail::default()
        };
        assert!(d.change_pending());
        d.last_attempt = Some(t + Duration::from_secs(1));
        assert!(!d.change_pending());
        assert_eq!(one_line("check failed\nnginx: [emerg] …"), "check failed");
        let long = "x".repeat(500);
        assert_eq!(one_line(&long).chars().count(), ERROR_CHARS + 1);
    }
}
