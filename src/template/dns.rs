//! A minimal, blocking DNS SRV resolver for the `lookupSRV` template function.
//!
//! Templates render synchronously, and the standard library can only resolve addresses, so
//! this speaks just enough DNS to ask the system's nameservers (from `/etc/resolv.conf`) for
//! SRV records: one question over UDP with EDNS0, TCP when the answer is truncated, the
//! `search`/`ndots` rules of Go's resolver, and confd's sort order for the result.

use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, UdpSocket};
use std::time::Duration;

/// One SRV record, as Go's `net.SRV` (the target keeps its trailing dot).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Srv {
    pub target: String,
    pub port: u16,
    pub priority: u16,
    pub weight: u16,
}

/// The parts of `/etc/resolv.conf` the lookup uses.
#[derive(Debug, Clone)]
pub(crate) struct ResolvConf {
    pub servers: Vec<SocketAddr>,
    pub search: Vec<String>,
    pub ndots: usize,
    pub timeout: Duration,
    pub attempts: usize,
}

impl Default for ResolvConf {
    /// Go's defaults when resolv.conf says nothing: the local host, ndots 1, 5 s, 2 attempts.
    fn default() -> Self {
        Self {
            servers: vec![
                SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 53),
                SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), 53),
            ],
            search: Vec::new(),
            ndots: 1,
            timeout: Duration::from_secs(5),
            attempts: 2,
        }
    }
}

impl ResolvConf {
    /// Parses resolv.conf text: `nameserver`, `search`, `domain` and `options` lines.
    pub(crate) fn parse(text: &str) -> Self {
        let mut conf = Self::default();
        let mut servers = Vec::new();
        for line in text.lines() {
            let mut words = line.split_whitespace();
            match words.next() {
                Some("nameserver") => {
                    // A zone index (fe80::1%eth0) is not usable here; skip such servers.
                    if let Some(ip) = words.next().and_then(|w| w.parse::<IpAddr>().ok()) {
                        servers.push(SocketAddr::new(ip, 53));
                    }
                }
                Some("search") => {
                    conf.search = words.map(|w| w.trim_end_matches('.').to_owned()).collect()
                }
                Some("domain") => {
                    conf.search = words
                        .next()
                        .map(|w| vec![w.trim_end_matches('.').to_owned()])
                        .unwrap_or_default()
                }
                Some("options") => {
                    for opt in words {
                        let (k, v) = opt.split_once(':').unwrap_or((opt, ""));
                        let n = v.parse::<u64>().ok();
                        match (k, n) {
                            ("ndots", Some(n)) => conf.ndots = n.min(15) as usize,
                            ("timeout", Some(n)) => {
                                conf.timeout = Duration::from_secs(n.clamp(1, 30))
                            }
                            ("attempts", Some(n)) => conf.attempts = n.clamp(1, 5) as usize,
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        if !servers.is_empty() {
            conf.servers = servers;
        }
        conf
    }

    /// The system configuration, or the defaults when `/etc/resolv.conf` cannot be read.
    pub(crate) fn system() -> Self {
        std::fs::read_to_string("/etc/resolv.conf")
            .map(|t| Self::parse(&t))
            .unwrap_or_default()
    }
}

/// Go's `net.LookupSRV(service, proto, name)` followed by confd's sort.
pub(crate) fn lookup_srv(service: &str, proto: &str, name: &str) -> io::Result<Vec<Srv>> {
    lookup_srv_with(&ResolvConf::system(), service, proto, name)
}

/// [`lookup_srv`] against a given configuration.
pub(crate) fn lookup_srv_with(
    conf: &ResolvConf,
    service: &str,
    proto: &str,
    name: &str,
) -> io::Result<Vec<Srv>> {
    let target = if service.is_empty() && proto.is_empty() {
        name.to_owned()
    } else {
        format!("_{service}._{proto}.{name}")
    };
    let mut last_err = io::Error::new(
        io::ErrorKind::NotFound,
        format!("no SRV records for {target}"),
    );
    for candidate in candidate_names(conf, &target) {
        match query_servers(conf, &candidate) {
            Ok(Some(mut records)) if !records.is_empty() => {
                // confd sorts by the string target+port+priority+weight.
                records.sort_by_cached_key(|r| {
                    format!("{}{}{}{}", r.target, r.port, r.priority, r.weight)
                });
                return Ok(records);
            }
            Ok(_) => {}
            Err(e) => last_err = e,
        }
    }
    Err(last_err)
}

/// The fully qualified names to try, in Go's order: a name with at least `ndots` dots is
/// tried as is first, others after the search domains; a trailing dot means as is only.
fn candidate_names(conf: &ResolvConf, name: &str) -> Vec<String> {
    if let Some(abs) = name.strip_suffix('.') {
        return vec![format!("{abs}.")];
    }
    let searched = conf.search.iter().map(|d| format!("{name}.{d}."));
    let as_is = format!("{name}.");
    if name.matches('.').count() >= conf.ndots {
        std::iter::once(as_is).chain(searched).collect()
    } else {
        searched.chain(std::iter::once(as_is)).collect()
    }
}

/// Asks each server in turn; `Ok(None)` is a definite "no such name".
fn query_servers(conf: &ResolvConf, qname: &str) -> io::Result<Option<Vec<Srv>>> {
    let mut last_err = io::Error::other("no nameservers configured");
    for _ in 0..conf.attempts {
        for server in &conf.servers {
            match query(*server, qname, conf.timeout) {
                Ok(answer) => return Ok(answer),
                Err(e) => last_err = e,
            }
        }
    }
    Err(last_err)
}

/// One question to one server: UDP, then TCP if the UDP answer was truncated.
fn query(server: SocketAddr, qname: &str, timeout: Duration) -> io::Result<Option<Vec<Srv>>> {
    let id: u16 = rand::random();
    let msg = build_query(id, qname)?;
    let bind: SocketAddr = if server.is_ipv4() {
        "0.0.0.0:0".parse().unwrap()
    } else {
        "[::]:0".parse().unwrap()
    };
    let sock = UdpSocket::bind(bind)?;
    sock.set_read_timeout(Some(timeout))?;
    sock.connect(server)?;
    sock.send(&msg)?;
    let mut buf = vec![0u8; 65535];
    loop {
        let n = sock.recv(&mut buf)?;
        match parse_response(id, &buf[..n]) {
            // A stray datagram with another id: keep waiting for ours.
            Err(Parse::OtherId) => continue,
            Err(Parse::Truncated) => break,
            Err(Parse::Bad(e)) => return Err(io::Error::new(io::ErrorKind::InvalidData, e)),
            Ok(answer) => return Ok(answer),
        }
    }
    let mut tcp = TcpStream::connect_timeout(&server, timeout)?;
    tcp.set_read_timeout(Some(timeout))?;
    tcp.set_write_timeout(Some(timeout))?;
    let mut framed = (msg.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(&msg);
    tcp.write_all(&framed)?;
    let mut len = [0u8; 2];
    tcp.read_exact(&mut len)?;
    let mut resp = vec![0u8; u16::from_be_bytes(len) as usize];
    tcp.read_exact(&mut resp)?;
    match parse_response(id, &resp) {
        Ok(answer) => Ok(answer),
        Err(Parse::OtherId) => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "DNS answer with the wrong id",
        )),
        Err(Parse::Truncated) => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "DNS answer truncated over TCP",
        )),
        Err(Parse::Bad(e)) => Err(io::Error::new(io::ErrorKind::InvalidData, e)),
    }
}

const TYPE_SRV: u16 = 33;
const TYPE_OPT: u16 = 41;
const CLASS_IN: u16 = 1;

/// A recursive SRV question for `qname` (fully qualified), with an EDNS0 OPT record
/// offering 1232-byte UDP answers as Go's resolver does.
pub(crate) fn build_query(id: u16, qname: &str) -> io::Result<Vec<u8>> {
    let mut m = Vec::with_capacity(64);
    m.extend_from_slice(&id.to_be_bytes());
    m.extend_from_slice(&0x0100u16.to_be_bytes()); // RD
    m.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 1]); // 1 question, 1 additional
    for label in qname
        .trim_end_matches('.')
        .split('.')
        .filter(|l| !l.is_empty())
    {
        if label.len() > 63 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("DNS label too long in {qname:?}"),
            ));
        }
        m.push(label.len() as u8);
        m.extend_from_slice(label.as_bytes());
    }
    m.push(0);
    m.extend_from_slice(&TYPE_SRV.to_be_bytes());
    m.extend_from_slice(&CLASS_IN.to_be_bytes());
    // OPT: root name, type, UDP payload size, extended rcode/flags, no data.
    m.push(0);
    m.extend_from_slice(&TYPE_OPT.to_be_bytes());
    m.extend_from_slice(&1232u16.to_be_bytes());
    m.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
    Ok(m)
}

/// Why an answer could not be used.
#[derive(Debug)]
pub(crate) enum Parse {
    /// Not the answer to our question.
    OtherId,
    /// The TC bit: ask again over TCP.
    Truncated,
    /// Malformed, or a server error.
    Bad(String),
}

/// Reads the SRV records of an answer; `Ok(None)` for NXDOMAIN.
pub(crate) fn parse_response(id: u16, m: &[u8]) -> Result<Option<Vec<Srv>>, Parse> {
    let bad = |what: &str| Parse::Bad(format!("malformed DNS answer: {what}"));
    let u16_at = |i: usize| -> Result<u16, Parse> {
        m.get(i..i + 2)
            .map(|b| u16::from_be_bytes([b[0], b[1]]))
            .ok_or_else(|| bad("too short"))
    };
    if u16_at(0)? != id {
        return Err(Parse::OtherId);
    }
    let flags = u16_at(2)?;
    if flags & 0x8000 == 0 {
        return Err(bad("not a response"));
    }
    if flags & 0x0200 != 0 {
        return Err(Parse::Truncated);
    }
    match flags & 0x000f {
        0 => {}
        3 => return Ok(None),
        rcode => return Err(Parse::Bad(format!("DNS server error (rcode {rcode})"))),
    }
    let (qd, an) = (u16_at(4)?, u16_at(6)?);
    let mut pos = 12;
    for _ in 0..qd {
        pos = read_name(m, pos).map_err(bad)?.1 + 4;
    }
    let mut out = Vec::new();
    for _ in 0..an {
        let (_, after) = read_name(m, pos).map_err(bad)?;
        let (rtype, class, rdlen) = (
            u16_at(after)?,
            u16_at(after + 2)?,
            u16_at(after + 8)? as usize,
        );
        let rdata = after + 10;
        if m.len() < rdata + rdlen {
            return Err(bad("record past the end"));
        }
        if rtype == TYPE_SRV && class == CLASS_IN {
            let (target, _) = read_name(m, rdata + 6).map_err(bad)?;
            out.push(Srv {
                priority: u16_at(rdata)?,
                weight: u16_at(rdata + 2)?,
                port: u16_at(rdata + 4)?,
                target,
            });
        }
        pos = rdata + rdlen;
    }
    Ok(Some(out))
}

/// Reads a possibly compressed name at `pos`: the dotted name (with a trailing dot) and the
/// position just after it in the record.
fn read_name(m: &[u8], mut pos: usize) -> Result<(String, usize), &'static str> {
    let mut name = String::new();
    let mut end = None;
    for _ in 0..128 {
        let len = *m.get(pos).ok_or("name past the end")? as usize;
        match len & 0xc0 {
            0x00 if len == 0 => {
                if name.is_empty() {
                    name.push('.');
                }
                return Ok((name, end.unwrap_or(pos + 1)));
            }
            0x00 => {
                let label = m.get(pos + 1..pos + 1 + len).ok_or("label past the end")?;
                name.push_str(&String::from_utf8_lossy(label));
                name.push('.');
                pos += 1 + len;
            }
            0xc0 => {
                let lo = *m.get(pos + 1).ok_or("pointer past the end")? as usize;
                end.get_or_insert(pos + 2);
                pos = ((len & 0x3f) << 8) | lo;
            }
            _ => return Err("unknown label type"),
        }
    }
    Err("name compression loop")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An answer to `query` with the given SRV records, the way a server compresses it.
    fn answer(query: &[u8], records: &[(u16, u16, u16, &str)], flags: u16) -> Vec<u8> {
        let mut m = query.to_vec();
        m.truncate(m.len() - 11); // drop the OPT record
        m[2..4].copy_from_slice(&flags.to_be_bytes());
        m[6..8].copy_from_slice(&(records.len() as u16).to_be_bytes());
        m[10..12].copy_from_slice(&[0, 0]);
        for (prio, weight, port, target) in records {
            m.extend_from_slice(&[0xc0, 12]); // pointer to the question name
            m.extend_from_slice(&TYPE_SRV.to_be_bytes());
            m.extend_from_slice(&CLASS_IN.to_be_bytes());
            m.extend_from_slice(&300u32.to_be_bytes());
            let mut rdata = Vec::new();
            rdata.extend_from_slice(&prio.to_be_bytes());
            rdata.extend_from_slice(&weight.to_be_bytes());
            rdata.extend_from_slice(&port.to_be_bytes());
            for l in target.trim_end_matches('.').split('.') {
                rdata.push(l.len() as u8);
                rdata.extend_from_slice(l.as_bytes());
            }
            rdata.push(0);
            m.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
            m.extend_from_slice(&rdata);
        }
        m
    }

    #[test]
    fn query_and_answer_round_trip() {
        let q = build_query(0x1234, "_http._tcp.example.com.").unwrap();
        assert_eq!(&q[..2], &[0x12, 0x34]);
        let a = answer(
            &q,
            &[
                (10, 5, 80, "b.example.com."),
                (10, 5, 8080, "a.example.com"),
            ],
            0x8180,
        );
        let recs = parse_response(0x1234, &a).unwrap().unwrap();
        assert_eq!(
            recs[0],
            Srv {
                target: "b.example.com.".into(),
                port: 80,
                priority: 10,
                weight: 5
            }
        );
        assert_eq!(recs[1].target, "a.example.com.");
        assert!(matches!(parse_response(1, &a), Err(Parse::OtherId)));
        assert!(matches!(
            parse_response(0x1234, &answer(&q, &[], 0x8183)),
            Ok(None)
        ));
        assert!(matches!(
            parse_response(0x1234, &answer(&q, &[], 0x8380)),
            Err(Parse::Truncated)
        ));
        assert!(matches!(
            parse_response(0x1234, &answer(&q, &[], 0x8182)),
            Err(Parse::Bad(_))
        ));
        assert!(matches!(
            parse_response(0x1234, &a[..a.len() - 3]),
            Err(Parse::Bad(_))
        ));
    }

    #[test]
    fn resolv_conf_and_search_order() {
        let c = ResolvConf::parse(
            "# comment\nnameserver 10.0.0.2\nnameserver fe80::1%eth0\nsearch svc.local example.\noptions ndots:2 timeout:1 attempts:1\n",
        );
        assert_eq!(
            c.servers,
            vec!["10.0.0.2:53".parse::<SocketAddr>().unwrap()]
        );
        assert_eq!(c.search, vec!["svc.local", "example"]);
        assert_eq!(
            (c.ndots, c.timeout, c.attempts),
            (2, Duration::from_secs(1), 1)
        );
        assert_eq!(
            candidate_names(&c, "db"),
            vec!["db.svc.local.", "db.example.", "db."]
        );
        assert_eq!(
            candidate_names(&c, "_x._tcp.db"),
            vec![
                "_x._tcp.db.",
                "_x._tcp.db.svc.local.",
                "_x._tcp.db.example."
            ]
        );
        assert_eq!(candidate_names(&c, "db."), vec!["db."]);
        assert_eq!(ResolvConf::parse("").servers.len(), 2);
    }

    /// A full lookup against a fake nameserver on the loopback interface, sorted as confd.
    #[test]
    fn lookup_against_a_local_server() {
        let server = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = server.local_addr().unwrap();
        let handle = std::thread::spawn(move || {
            let mut buf = [0u8; 512];
            let (n, from) = server.recv_from(&mut buf).unwrap();
            let q = &buf[..n];
            let a = answer(
                q,
                &[(20, 1, 80, "web2.example."), (10, 1, 80, "web1.example.")],
                0x8180,
            );
            server.send_to(&a, from).unwrap();
        });
        let conf = ResolvConf {
            servers: vec![addr],
            search: vec![],
            ndots: 1,
            timeout: Duration::from_secs(5),
            attempts: 1,
        };
        let recs = lookup_srv_with(&conf, "http", "tcp", "example").unwrap();
        handle.join().unwrap();
        let targets: Vec<_> = recs
            .iter()
            .map(|r| (r.target.as_str(), r.priority))
            .collect();
        assert_eq!(targets, vec![("web1.example.", 10), ("web2.example.", 20)]);
    }
}
