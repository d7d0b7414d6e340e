//! Endpoint discovery from DNS SRV (`[etcd] srv_domain`) against a real DNS server on
//! loopback (dnsmasq, tests/util/dns.rs) and a real etcd.

mod util;

use std::path::PathBuf;
use std::process::Output;

use util::dns::{Dns, Srv};
use util::{run, Etcd, Tree};

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn port_of(etcd: &Etcd) -> u16 {
    etcd.endpoint.rsplit(':').next().unwrap().parse().unwrap()
}

/// A tree with one resource rendering `/svc/a` and a config file with `etcd_toml` as `[etcd]`.
fn tree(etcd_toml: &str) -> (Tree, PathBuf) {
    let t = Tree::new();
    t.template("a.tera", "a={{ getv(key=\"/svc/a\") }}\n");
    t.resource(
        "a",
        "[template]\nsrc = \"a.tera\"\ndest = \"@OUT@/a.conf\"\nkeys = [\"/svc\"]\n",
    );
    let config = t.root.path().join("reconfd.toml");
    std::fs::write(&config, format!("[etcd]\n{etcd_toml}")).unwrap();
    (t, config)
}

/// The members come from `_etcd-client._tcp.DOMAIN` in SRV order: the lower priority (a dead
/// port) is tried first, then the next, which answers; the file is rendered.
#[test]
fn once_finds_etcd_through_srv_in_priority_order() {
    let etcd = Etcd::start();
    etcd.put("/svc/a", "1");
    let dead = util::free_port();
    let name = "_etcd-client._tcp.example.test";
    let Some(dns) = Dns::start(&[
        Srv {
            name,
            target: "127.0.0.1",
            port: port_of(&etcd),
            priority: 20,
            weight: 0,
        },
        Srv {
            name,
            target: "127.0.0.1",
            port: dead,
            priority: 10,
            weight: 0,
        },
    ]) else {
        return;
    };
    let (t, config) = tree(&format!(
        "srv_domain = \"example.test\"\nsrv_resolver = \"{}\"\n",
        dns.addr
    ));
    let o = run(t.reconfd(None, &["once", "--config", &config.display().to_string()]));
    let out = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}\ndnsmasq: {}", dns.log());
    assert_eq!(t.read("a.conf"), "a=1\n");
    assert!(
        out.contains(&format!(
            "endpoints=http://127.0.0.1:{dead},{}",
            etcd.endpoint
        )),
        "the lower priority first: {out}"
    );
    assert!(
        out.contains(&format!(
            "cannot connect to http://127.0.0.1:{dead}: connection refused"
        )),
        "{out}"
    );
}

/// No record: exit 69 (no etcd member reachable), naming the record asked for; with a CA
/// configured that is the `_etcd-client-ssl` record.
#[test]
fn a_missing_record_is_named() {
    let Some(dns) = Dns::start(&[]) else {
        return;
    };
    let (t, config) = tree(&format!(
        "srv_domain = \"nothing.test\"\nsrv_resolver = \"{}\"\n",
        dns.addr
    ));
    let o = run(t.reconfd(None, &["once", "--config", &config.display().to_string()]));
    let out = text(&o);
    assert_eq!(o.status.code(), Some(69), "{out}");
    assert!(
        out.contains("DNS SRV record _etcd-client._tcp.nothing.test gives no etcd endpoint"),
        "{out}"
    );

    let pki = util::Pki::new();
    let ca = pki.ca("ca");
    let (t, config) = tree(&format!(
        "srv_domain = \"nothing.test\"\nsrv_resolver = \"{}\"\n[etcd.tls]\nca_file = \"{}\"\n",
        dns.addr,
        ca.display()
    ));
    let o = run(t.reconfd(None, &["once", "--config", &config.display().to_string()]));
    let out = text(&o);
    assert_eq!(o.status.code(), Some(69), "{out}");
    assert!(
        out.contains("DNS SRV record _etcd-client-ssl._tcp.nothing.test gives no etcd endpoint"),
        "{out}"
    );
}

/// Endpoints and a SRV domain together are a configuration error.
#[test]
fn endpoints_and_srv_domain_together_are_refused() {
    let (t, config) = tree("endpoints = [\"http://127.0.0.1:1\"]\nsrv_domain = \"example.test\"\n");
    let o = run(t.reconfd(None, &["check", "--config", &config.display().to_string()]));
    assert_eq!(o.status.code(), Some(78), "{}", text(&o));
    assert!(
        text(&o).contains("etcd.endpoints and etcd.srv_domain are both set"),
        "{}",
        text(&o)
    );
}

/// `reconfd confd -srv-domain` asks confd's record, `_BACKEND._tcp.DOMAIN`, and the members it
/// lists replace `-node`; `-srv-record` names the record itself. The DNS server is given by
/// `RECONFD_SRV_RESOLVER` (confd has no flag for it).
#[test]
fn confd_srv_domain_and_srv_record_find_etcd() {
    let etcd = Etcd::start();
    etcd.put("/svc/a", "2");
    let Some(dns) = Dns::start(&[
        Srv {
            name: "_etcdv3._tcp.example.test",
            target: "127.0.0.1",
            port: port_of(&etcd),
            priority: 0,
            weight: 0,
        },
        Srv {
            name: "_members._tcp.other.test",
            target: "127.0.0.1",
            port: port_of(&etcd),
            priority: 0,
            weight: 0,
        },
    ]) else {
        return;
    };
    let t = Tree::new();
    t.template("a.tmpl", "a={{getv \"/svc/a\"}}\n");
    t.resource(
        "a",
        "[template]\nsrc = \"a.tmpl\"\ndest = \"@OUT@/a.conf\"\nkeys = [\"/svc\"]\n",
    );
    let confd = |extra: &[&str]| {
        let mut c = util::reconfd();
        c.env("RECONFD_SRV_RESOLVER", &dns.addr)
            .env_remove("ETCDCTL_PEERS")
            .arg("confd")
            .arg("-config-file")
            .arg(t.root.path().join("no-confd.toml"))
            .arg("-confdir")
            .arg(t.confdir())
            .args(["-onetime", "-backend", "etcdv3", "-node", "127.0.0.1:1"])
            .args(extra);
        run(c)
    };
    let o = confd(&["-srv-domain", "example.test"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(t.read("a.conf"), "a=2\n");
    assert!(
        text(&o).contains("nodes from DNS SRV _etcdv3._tcp.example.test"),
        "{}",
        text(&o)
    );

    std::fs::remove_file(t.out().join("a.conf")).unwrap();
    let o = confd(&["-srv-record", "_members._tcp.other.test"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(t.read("a.conf"), "a=2\n");

    // No answer: confd's exit code, 1, naming the record.
    let o = confd(&["-srv-domain", "nothing.test"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("DNS SRV record _etcdv3._tcp.nothing.test gives no etcd endpoint"),
        "{}",
        text(&o)
    );
}

/// `run` at start: a record with no answer means nothing to follow; it exits 69 (the unit's
/// `Restart=` asks again) with the record named, instead of following a default endpoint.
#[test]
fn run_exits_69_at_start_without_an_answer() {
    let Some(dns) = Dns::start(&[]) else {
        return;
    };
    let (t, config) = tree(&format!(
        "srv_domain = \"nothing.test\"\nsrv_resolver = \"{}\"\n",
        dns.addr
    ));
    let mut d =
        util::Daemon::spawn(t.reconfd(None, &["run", "--config", &config.display().to_string()]));
    let status = d.wait_exit(std::time::Duration::from_secs(20));
    assert_eq!(status.code(), Some(69), "{}", d.log());
    assert!(
        d.log()
            .contains("DNS SRV record _etcd-client._tcp.nothing.test gives no etcd endpoint"),
        "{}",
        d.log()
    );
}
