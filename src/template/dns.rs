//! DNS SRV lookups for the `lookupSRV` template function, done by `hickory-resolver`.
//!
//! The resolver reads the system configuration (`/etc/resolv.conf`: nameservers, `search`,
//! `ndots`, `timeout`, `attempts`) and falls back to nameservers on the local host, as glibc
//! and Go do, when that file is missing or names none.
//!
//! Template functions are synchronous and may run on a Tokio worker thread (the daemon) or on
//! a plain thread (`reconfd render`, tests). Blocking on the caller's runtime would panic or
//! stall it, so every lookup runs on a short-lived thread of its own with a current-thread
//! runtime, and the caller just waits for that thread.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use hickory_resolver::config::{NameServerConfigGroup, ResolverConfig, ResolverOpts};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::Resolver;

/// One SRV record, as Go's `net.SRV` (the target keeps its trailing dot).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Srv {
    pub target: String,
    pub port: u16,
    pub priority: u16,
    pub weight: u16,
}

/// Go's `net.LookupSRV(service, proto, name)` against the system configuration, followed by
/// confd's sort.
pub(crate) fn lookup_srv(service: &str, proto: &str, name: &str) -> io::Result<Vec<Srv>> {
    let (config, options) = system_config();
    lookup_srv_with(config, options, service, proto, name)
}

/// The system's resolver configuration; nameservers on the local host when there is none.
fn system_config() -> (ResolverConfig, ResolverOpts) {
    match hickory_resolver::system_conf::read_system_conf() {
        Ok(conf) => conf,
        Err(e) => {
            tracing::warn!(error = %e, "no usable /etc/resolv.conf; asking nameservers on the local host");
            let local = [
                IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V6(Ipv6Addr::LOCALHOST),
            ];
            let servers = NameServerConfigGroup::from_ips_clear(&local, 53, false);
            (
                ResolverConfig::from_parts(None, vec![], servers),
                ResolverOpts::default(),
            )
        }
    }
}

/// [`lookup_srv`] against a given configuration.
pub(crate) fn lookup_srv_with(
    config: ResolverConfig,
    options: ResolverOpts,
    service: &str,
    proto: &str,
    name: &str,
) -> io::Result<Vec<Srv>> {
    let query = if service.is_empty() && proto.is_empty() {
        name.to_owned()
    } else {
        format!("_{service}._{proto}.{name}")
    };
    let lookup = move || -> io::Result<Vec<Srv>> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let resolver = Resolver::builder_with_config(config, TokioConnectionProvider::default())
            .with_options(options)
            .build();
        let answer = runtime
            .block_on(resolver.srv_lookup(query))
            .map_err(io::Error::other)?;
        Ok(answer
            .iter()
            .map(|r| Srv {
                target: r.target().to_ascii(),
                port: r.port(),
                priority: r.priority(),
                weight: r.weight(),
            })
            .collect())
    };
    let mut records = std::thread::scope(|s| {
        std::thread::Builder::new()
            .name("reconfd-dns".into())
            .spawn_scoped(s, lookup)?
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("the DNS lookup thread panicked")))
    })?;
    confd_sort(&mut records);
    Ok(records)
}

/// confd's order: by the string target+port+priority+weight (so mostly by target).
fn confd_sort(records: &mut [Srv]) {
    records.sort_by_cached_key(|r| format!("{}{}{}{}", r.target, r.port, r.priority, r.weight));
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_resolver::config::NameServerConfig;
    use hickory_resolver::proto::op::{Message, MessageType, ResponseCode};
    use hickory_resolver::proto::rr::rdata::SRV;
    use hickory_resolver::proto::rr::{Name, RData, Record};
    use hickory_resolver::proto::xfer::Protocol;
    use std::net::{SocketAddr, UdpSocket};
    use std::str::FromStr;
    use std::sync::mpsc;
    use std::time::Duration;

    /// A nameserver on the loopback interface that knows the SRV records of one name and
    /// answers NXDOMAIN for any other; it reports every name it is asked and stops after
    /// two idle seconds.
    fn fake_server(
        known: &str,
        records: &[(u16, u16, u16, &str)],
    ) -> (SocketAddr, mpsc::Receiver<String>) {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let addr = sock.local_addr().unwrap();
        let known = Name::from_str(known).unwrap();
        let answers: Vec<Record> = records
            .iter()
            .map(|&(prio, weight, port, target)| {
                let srv = SRV::new(prio, weight, port, Name::from_str(target).unwrap());
                Record::from_rdata(known.clone(), 300, RData::SRV(srv))
            })
            .collect();
        let (seen, names) = mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok((n, from)) = sock.recv_from(&mut buf) {
                let query = Message::from_vec(&buf[..n]).unwrap();
                let qname = query.queries()[0].name().clone();
                let _ = seen.send(qname.to_ascii());
                let mut reply = Message::new();
                reply
                    .set_id(query.id())
                    .set_message_type(MessageType::Response)
                    .set_op_code(query.op_code())
                    .set_recursion_desired(query.recursion_desired())
                    .set_recursion_available(true)
                    .add_queries(query.queries().to_vec());
                if qname.eq_case(&known) {
                    reply.add_answers(answers.clone());
                } else {
                    reply.set_response_code(ResponseCode::NXDomain);
                }
                sock.send_to(&reply.to_vec().unwrap(), from).unwrap();
            }
        });
        (addr, names)
    }

    /// A configuration with only `server` (over UDP) and the given search domains.
    fn config(server: SocketAddr, search: &[&str]) -> (ResolverConfig, ResolverOpts) {
        let search = search.iter().map(|d| Name::from_str(d).unwrap()).collect();
        let ns = vec![NameServerConfig::new(server, Protocol::Udp)];
        let mut opts = ResolverOpts::default();
        opts.timeout = Duration::from_secs(2);
        opts.attempts = 1;
        (ResolverConfig::from_parts(None, search, ns), opts)
    }

    /// A full lookup against a fake nameserver on the loopback interface, sorted as confd.
    #[test]
    fn lookup_against_a_local_server() {
        let (addr, _) = fake_server(
            "_http._tcp.example.",
            &[
                (20, 1, 80, "web2.example."),
                (10, 1, 80, "web1.example."),
                (5, 1, 80, "web3.example."),
            ],
        );
        let (conf, opts) = config(addr, &[]);
        let recs = lookup_srv_with(conf, opts, "http", "tcp", "example").unwrap();
        let got: Vec<_> = recs
            .iter()
            .map(|r| (r.target.as_str(), r.port, r.priority, r.weight))
            .collect();
        // confd sorts by target first, not by priority.
        assert_eq!(
            got,
            vec![
                ("web1.example.", 80, 10, 1),
                ("web2.example.", 80, 20, 1),
                ("web3.example.", 80, 5, 1),
            ]
        );
    }

    /// A relative name goes through the search domains, as with Go's resolver.
    #[test]
    fn search_domains_and_missing_names() {
        let (addr, names) = fake_server("_ldap._tcp.db.svc.local.", &[(0, 0, 389, "ldap1.")]);
        let (conf, opts) = config(addr, &["svc.local."]);
        let recs = lookup_srv_with(conf.clone(), opts.clone(), "ldap", "tcp", "db").unwrap();
        assert_eq!(recs[0].target, "ldap1.");
        assert_eq!(recs[0].port, 389);
        let asked: Vec<String> = names.try_iter().collect();
        assert!(
            asked.contains(&"_ldap._tcp.db.svc.local.".to_owned()),
            "{asked:?}"
        );

        // An absolute name is asked as is only; NXDOMAIN is an error (an empty list upstream).
        assert!(lookup_srv_with(conf, opts, "ldap", "tcp", "db.").is_err());
        let asked: Vec<String> = names.try_iter().collect();
        assert_eq!(asked, vec!["_ldap._tcp.db."]);
    }

    /// Template functions run inside the daemon's runtime too: the lookup must not block on
    /// (or panic about) the caller's runtime, whichever flavour it is.
    #[test]
    fn works_from_inside_a_runtime() {
        let (addr, _) = fake_server("_x._udp.rt.", &[(1, 1, 53, "ns.rt.")]);
        let (conf, opts) = config(addr, &[]);
        let lookup = move || lookup_srv_with(conf, opts, "x", "udp", "rt.").unwrap();

        let current = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let lookup2 = lookup.clone();
        assert_eq!(current.block_on(async { lookup2() }).len(), 1);

        let multi = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let recs = multi.block_on(async { tokio::spawn(async move { lookup() }).await.unwrap() });
        assert_eq!(recs[0].target, "ns.rt.");
    }

    #[test]
    fn confd_order() {
        let srv = |target: &str, port, priority, weight| Srv {
            target: target.into(),
            port,
            priority,
            weight,
        };
        let mut recs = vec![
            srv("b.", 80, 1, 1),
            srv("a.", 8080, 1, 1),
            srv("a.", 443, 9, 1),
            srv("a.", 443, 10, 1),
        ];
        confd_sort(&mut recs);
        // String comparison: "a.443101" < "a.44391" < "a.808011" < "b.8011".
        let order: Vec<_> = recs
            .iter()
            .map(|r| (r.target.as_str(), r.port, r.priority))
            .collect();
        assert_eq!(
            order,
            vec![
                ("a.", 443, 10),
                ("a.", 443, 9),
                ("a.", 8080, 1),
                ("b.", 80, 1)
            ]
        );
    }
}
