//! Going back to the preferred member after a failover: the first configured endpoint (or the
//! first SRV answer), e.g. the one in the same rack.
//!
//! The follower stays on the member it failed over to for at least the minimum stay, then
//! probes the preferred member (one connection and one small read, beside the running watch);
//! when it answers, the follower moves back, resuming its watch there from the next revision,
//! so no change is missed. When it does not, the next probe is one minimum stay later: at most
//! one probe per stay, never a storm of reconnects. No clock here: the follower says how long
//! to wait, the driver (`watch.rs`) waits and probes.

use std::time::Duration;

/// When and where to probe; `None` from [`Preference::new`] when going back is off.
#[derive(Debug, Clone)]
pub struct Preference {
    /// The preferred endpoint.
    preferred: String,
    /// The minimum stay elsewhere, and the time between probes.
    min_stay: Duration,
    /// A probe is armed or under way (so a second is not armed beside it).
    pending: bool,
}

/// What to do about the preferred member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Nothing.
    Stay,
    /// Probe `endpoint` after `after`.
    Probe {
        /// The preferred endpoint.
        endpoint: String,
        /// The wait before probing.
        after: Duration,
    },
    /// It answered: move back to it.
    Return(String),
}

impl Preference {
    /// Going back to `endpoints[0]` after `min_stay`; `None` with fewer than two endpoints or
    /// no minimum stay.
    pub fn new(endpoints: &[String], min_stay: Option<Duration>) -> Option<Self> {
        let min_stay = min_stay?;
        (endpoints.len() > 1 && !min_stay.is_zero()).then(|| Preference {
            preferred: endpoints[0].clone(),
            min_stay,
            pending: false,
        })
    }

    /// The preferred endpoint.
    pub fn preferred(&self) -> &str {
        &self.preferred
    }

    /// The follower now follows `member`: elsewhere than the preferred one, a probe after the
    /// minimum stay (unless one is armed already).
    pub fn following(&mut self, member: &str) -> Step {
        if member == self.preferred || self.pending {
            return Step::Stay;
        }
        self.probe()
    }

    /// A probe of the preferred member ended; `healthy` when it answered. `following` is the
    /// member followed now, `None` while no watch is open.
    pub fn probed(&mut self, healthy: bool, following: Option<&str>) -> Step {
        self.pending = false;
        match following {
            Some(m) if m == self.preferred => Step::Stay,
            Some(_) if healthy => Step::Return(self.preferred.clone()),
            // Unhealthy, or between sessions: look again one stay later.
            _ => self.probe(),
        }
    }

    fn probe(&mut self) -> Step {
        self.pending = true;
        Step::Probe {
            endpoint: self.preferred.clone(),
            after: self.min_stay,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn two() -> Preference {
        Preference::new(&["a".into(), "b".into()], Some(Duration::from_secs(30))).unwrap()
    }

    fn probe_a() -> Step {
        Step::Probe {
            endpoint: "a".into(),
            after: Duration::from_secs(30),
        }
    }

    #[test]
    fn off_with_one_endpoint_or_no_stay() {
        assert!(Preference::new(&["a".into()], Some(Duration::from_secs(1))).is_none());
        assert!(Preference::new(&["a".into(), "b".into()], None).is_none());
        assert!(Preference::new(&["a".into(), "b".into()], Some(Duration::ZERO)).is_none());
    }

    #[test]
    fn on_the_preferred_member_nothing_is_probed() {
        let mut p = two();
        assert_eq!(p.following("a"), Step::Stay);
    }

    #[test]
    fn elsewhere_one_probe_after_the_stay_then_back_when_healthy() {
        let mut p = two();
        assert_eq!(p.following("b"), probe_a());
        assert_eq!(p.following("b"), Step::Stay, "one probe at a time");
        assert_eq!(p.probed(true, Some("b")), Step::Return("a".into()));
    }

    #[test]
    fn an_unhealthy_preferred_member_is_probed_again_one_stay_later() {
        let mut p = two();
        p.following("b");
        for _ in 0..5 {
            assert_eq!(p.probed(false, Some("b")), probe_a());
        }
        assert_eq!(p.probed(true, None), probe_a(), "no session: later");
        assert_eq!(p.probed(true, Some("a")), Step::Stay, "already back");
        assert_eq!(p.following("a"), Step::Stay);
    }
}
