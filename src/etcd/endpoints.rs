//! The one order in which etcd endpoints are tried, and when to stop trying for a while.
//!
//! etcd-client balances every request over all the endpoints it is given and keeps dead ones
//! in the rotation (rust-deps.md §2.1), so reconfd hands it one member at a time and fails over
//! itself. Everything that talks to etcd walks the endpoints the same way ([`Failover`]):
//!
//! - the configured order, starting with the first endpoint (the default endpoint when none is
//!   configured);
//! - a failure moves to the next endpoint at once;
//! - once every endpoint has failed in a row (a *round*), the follower waits before the next
//!   try, 100 ms doubling up to 10 s, plus up to half as much again at random ([`jittered`]) so
//!   a fleet does not retry in step; a one-shot read ([`super::read_any`]) gives up instead,
//!   with the last endpoint's error;
//! - a session that got as far as it should (the follower's watch was opened) starts a new
//!   round: its failure moves to the next endpoint at once, and the backoff starts again from
//!   100 ms.
//!
//! It owns no connection and no clock: callers say what happened and get told what to do.

use std::time::Duration;

/// The first wait after a round of failures.
pub const BACKOFF_MIN: Duration = Duration::from_millis(100);
/// The longest wait between rounds.
pub const BACKOFF_MAX: Duration = Duration::from_secs(10);

/// What to do after a failure at [`Failover::current`] (which has moved on already).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Try [`Failover::current`], the next endpoint, now.
    Now,
    /// Every endpoint failed in a row: wait this long (before [`jittered`]), then try
    /// [`Failover::current`].
    Backoff(Duration),
}

/// Which endpoint to try, and how many failed in a row.
#[derive(Debug, Clone)]
pub struct Failover {
    /// The endpoints in the configured order; never empty.
    endpoints: Vec<String>,
    /// Index of the endpoint to try now.
    index: usize,
    /// Failures since the last session that got as far as it should.
    failed_in_row: usize,
    /// The wait after the next failed round.
    backoff: Duration,
}

impl Failover {
    /// Starts at the first of `endpoints`; with none, at the default endpoint.
    pub fn new(endpoints: &[String]) -> Self {
        let endpoints = if endpoints.is_empty() {
            vec![crate::config::DEFAULT_ENDPOINT.to_owned()]
        } else {
            endpoints.to_vec()
        };
        Failover {
            endpoints,
            index: 0,
            failed_in_row: 0,
            backoff: BACKOFF_MIN,
        }
    }

    /// The endpoint to try now.
    pub fn current(&self) -> &str {
        &self.endpoints[self.index]
    }

    /// Every endpoint, in order.
    pub fn all(&self) -> &[String] {
        &self.endpoints
    }

    /// How many endpoints there are.
    pub fn len(&self) -> usize {
        self.endpoints.len()
    }

    /// Always false: there is at least the default endpoint.
    pub fn is_empty(&self) -> bool {
        self.endpoints.is_empty()
    }

    /// The attempt at [`Self::current`] failed; `got_through` says whether it had got as far as
    /// it should before (the follower: its watch was open), which starts a new round. Moves to
    /// the next endpoint and says whether to try it now or after a wait.
    pub fn failed(&mut self, got_through: bool) -> Next {
        if got_through {
            self.failed_in_row = 0;
            self.backoff = BACKOFF_MIN;
        }
        self.failed_in_row += 1;
        self.index = (self.index + 1) % self.endpoints.len();
        if self.failed_in_row < self.endpoints.len() {
            return Next::Now;
        }
        let wait = self.backoff;
        self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
        Next::Backoff(wait)
    }
}

impl Failover {
    /// Replaces the endpoints (DNS SRV answered anew), from the first; the count of failures
    /// and the backoff go on.
    pub fn replace(&mut self, endpoints: &[String]) {
        if endpoints.is_empty() {
            return;
        }
        self.endpoints = endpoints.to_vec();
        self.index = 0;
    }

    /// Moves to the first endpoint as after a session that got through: the next failure
    /// moves on at once, and a round of failures backs off from the shortest wait.
    pub fn prefer_first(&mut self) {
        self.index = 0;
        self.failed_in_row = 0;
        self.backoff = BACKOFF_MIN;
    }
}

/// `base` plus a random share of up to half of it.
pub fn jittered(base: Duration) -> Duration {
    let spread = base.as_millis() as u64 / 2 + 1;
    base + Duration::from_millis(rand::random::<u64>() % spread)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn three() -> Failover {
        Failover::new(&["a".into(), "b".into(), "c".into()])
    }

    #[test]
    fn a_failure_moves_to_the_next_endpoint_at_once_until_a_round_failed() {
        let mut f = three();
        assert_eq!(f.current(), "a");
        assert_eq!(f.failed(false), Next::Now);
        assert_eq!(f.current(), "b");
        assert_eq!(f.failed(false), Next::Now);
        assert_eq!(f.current(), "c");
        assert_eq!(f.failed(false), Next::Backoff(BACKOFF_MIN));
        assert_eq!(f.current(), "a", "after a round, the first endpoint again");
    }

    #[test]
    fn backoff_doubles_per_failure_up_to_the_maximum() {
        let mut f = three();
        f.failed(false);
        f.failed(false);
        let mut waits = Vec::new();
        for _ in 0..10 {
            match f.failed(false) {
                Next::Backoff(d) => waits.push(d),
                Next::Now => panic!("a failed round backs off before every try"),
            }
        }
        assert_eq!(waits[0], BACKOFF_MIN);
        assert_eq!(waits[1], BACKOFF_MIN * 2);
        assert_eq!(waits[2], BACKOFF_MIN * 4);
        assert!(waits.windows(2).all(|w| w[1] >= w[0]));
        assert_eq!(*waits.last().unwrap(), BACKOFF_MAX);
    }

    #[test]
    fn a_session_that_got_through_starts_a_new_round() {
        let mut f = three();
        f.failed(false);
        f.failed(false);
        assert!(matches!(f.failed(false), Next::Backoff(_)));
        assert!(matches!(f.failed(false), Next::Backoff(_)));
        // "b" was followed for a while, then failed: "c" is tried at once, and the next
        // failed round waits the shortest time again.
        assert_eq!(f.current(), "b");
        assert_eq!(f.failed(true), Next::Now);
        assert_eq!(f.current(), "c");
        assert_eq!(f.failed(false), Next::Now);
        assert_eq!(f.failed(false), Next::Backoff(BACKOFF_MIN));
    }

    #[test]
    fn one_endpoint_backs_off_after_each_failure() {
        let mut f = Failover::new(&["only".into()]);
        assert_eq!(f.failed(true), Next::Backoff(BACKOFF_MIN));
        assert_eq!(f.failed(false), Next::Backoff(BACKOFF_MIN * 2));
        assert_eq!(f.current(), "only");
    }

    #[test]
    fn no_endpoint_means_the_default_one() {
        let f = Failover::new(&[]);
        assert_eq!(f.all(), [crate::config::DEFAULT_ENDPOINT.to_owned()]);
        assert!(!f.is_empty());
    }

    #[test]
    fn jitter_adds_at_most_half() {
        for base in [Duration::ZERO, BACKOFF_MIN, BACKOFF_MAX] {
            for _ in 0..50 {
                let d = jittered(base);
                assert!(d >= base && d <= base + base / 2 + Duration::from_millis(1));
            }
        }
    }
}
