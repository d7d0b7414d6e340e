//! Endpoint discovery from DNS SRV records (`[etcd] srv_domain`, confd's `-srv-domain`):
//! etcd's own names, `_etcd-client._tcp.DOMAIN` (or `_etcd-client-ssl._tcp.DOMAIN` with TLS),
//! list the members; they become the endpoints, in SRV order: lowest priority first, then the
//! highest weight (RFC 2782 picks at random by weight; reconfd tries members one at a time, so
//! a fixed order that prefers the heavier member keeps failover predictable).
//!
//! Asked at start ([`discover`]); the caller keeps the answer for the process (see
//! docs/operations.md).

use std::time::Duration;

use hickory_resolver::config::{NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::proto::xfer::Protocol;
use hickory_resolver::Resolver;

use crate::config::{EtcdSettings, SrvSettings};

/// Why no endpoint could be discovered; the message names the record.
#[derive(Debug, thiserror::Error)]
pub enum SrvError {
    /// The lookup failed or had no answer.
    #[error("DNS SRV record {record} gives no etcd endpoint: {reason}")]
    Lookup {
        /// The record asked for.
        record: String,
        /// The resolver's words.
        reason: String,
    },
}

/// One SRV answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The host, without the root's trailing dot.
    pub target: String,
    /// Its client port.
    pub port: u16,
    /// Lower is tried first.
    pub priority: u16,
    /// Among equal priorities, higher is tried first.
    pub weight: u16,
}

/// `settings` with its endpoints discovered when `srv` discovery is on; unchanged otherwise.
pub async fn discover(settings: &EtcdSettings) -> Result<EtcdSettings, SrvError> {
    let Some(srv) = &settings.srv else {
        return Ok(settings.clone());
    };
    let members = lookup(srv).await?;
    let scheme = if srv.tls { "https" } else { "http" };
    let endpoints: Vec<String> = members
        .iter()
        .map(|m| format!("{scheme}://{}:{}", m.target, m.port))
        .collect();
    tracing::info!(record = %srv.record, endpoints = %endpoints.join(","), "etcd endpoints from DNS SRV");
    let mut out = settings.clone();
    out.endpoints = endpoints;
    Ok(out)
}

/// The members `srv.record` lists, in the order to try them ([`order`]).
async fn lookup(srv: &SrvSettings) -> Result<Vec<Member>, SrvError> {
    let fail = |reason: String| SrvError::Lookup {
        record: srv.record.clone(),
        reason,
    };
    let (config, mut options) = match srv.resolver {
        Some(addr) => (
            ResolverConfig::from_parts(
                None,
                vec![],
                vec![NameServerConfig::new(addr, Protocol::Udp)],
            ),
            ResolverOpts::default(),
        ),
        None => hickory_resolver::system_conf::read_system_conf().map_err(|e| {
            fail(format!(
                "cannot read the system's resolver configuration: {e}"
            ))
        })?,
    };
    options.timeout = Duration::from_secs(3);
    options.attempts = 2;
    let resolver = Resolver::builder_with_config(config, TokioConnectionProvider::default())
        .with_options(options)
        .build();
    // Fully qualified, so no search domain is appended.
    let name = format!("{}.", srv.record.trim_end_matches('.'));
    let answer = resolver.srv_lookup(name).await.map_err(|e| {
        fail(if e.is_nx_domain() {
            "the name does not exist (NXDOMAIN)".into()
        } else if e.is_no_records_found() {
            "no SRV record of that name".into()
        } else {
            e.to_string()
        })
    })?;
    let mut members: Vec<Member> = answer
        .iter()
        .map(|r| Member {
            target: r.target().to_ascii().trim_end_matches('.').to_owned(),
            port: r.port(),
            priority: r.priority(),
            weight: r.weight(),
        })
        .collect();
    if members.is_empty() {
        return Err(fail("no answer".into()));
    }
    order(&mut members);
    Ok(members)
}

/// Lowest priority first, then highest weight, then by name and port (a stable order).
pub fn order(members: &mut [Member]) {
    members.sort_by(|a, b| {
        a.priority
            .cmp(&b.priority)
            .then(b.weight.cmp(&a.weight))
            .then(a.target.cmp(&b.target))
            .then(a.port.cmp(&b.port))
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(target: &str, priority: u16, weight: u16) -> Member {
        Member {
            target: target.into(),
            port: 2379,
            priority,
            weight,
        }
    }

    #[test]
    fn priority_then_weight_decide_the_order() {
        let mut v = vec![m("c", 20, 0), m("b", 10, 5), m("a", 10, 50), m("d", 10, 5)];
        order(&mut v);
        let names: Vec<&str> = v.iter().map(|m| m.target.as_str()).collect();
        assert_eq!(names, ["a", "b", "d", "c"]);
    }
}
