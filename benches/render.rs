//! Render cost of one template in each engine: the nginx upstream of the brief, written in
//! Tera and in confd's Go syntax, over 1, 100 and 10,000 registered backends, and the
//! multi-service proxy (lsdir + gets per service) over 100 services × 10 backends.
//!
//! `cargo bench --bench render` prints p50/p90/p99 per case (BENCH_SAMPLES, default 200).
//! Only the render is timed: the view is built once, as the daemon's actors do.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use reconfd::store::KvView;
use reconfd::template::{EngineKind, Template};

const UPSTREAM_TERA: &str = "upstream app {\n{% for s in getvs(pattern=\"/services/web/*\") %}    server {{ s }};\n{% endfor %}}\n";
const UPSTREAM_GO: &str =
    "upstream app {\n{{- range getvs \"/services/web/*\"}}\n    server {{.}};\n{{- end}}\n}\n";
const PROXY_TERA: &str = "{% for svc in lsdir(path=\"/svc\") %}upstream {{ svc }} {\n{% for kv in gets(pattern=\"/svc/\" ~ svc ~ \"/*\") %}    server {{ kv.value }}; # {{ kv.key | base }}\n{% endfor %}}\n{% endfor %}";
const PROXY_GO: &str = "{{range $svc := lsdir \"/svc\"}}upstream {{$svc}} {\n{{range gets (printf \"/svc/%s/*\" $svc)}}    server {{.Value}}; # {{base .Key}}\n{{end}}}\n{{end}}";

fn main() {
    let samples: usize = std::env::var("BENCH_SAMPLES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    println!("case                         engine     p50 ms   p90 ms   p99 ms   bytes");
    for n in [1usize, 100, 10_000] {
        let view = upstream_view(n);
        for (kind, src) in [
            (EngineKind::Tera, UPSTREAM_TERA),
            (EngineKind::Go, UPSTREAM_GO),
        ] {
            run(&format!("upstream {n} keys"), kind, src, &view, samples);
        }
    }
    let view = proxy_view(100, 10);
    for (kind, src) in [(EngineKind::Tera, PROXY_TERA), (EngineKind::Go, PROXY_GO)] {
        run("proxy 100 svc x 10", kind, src, &view, samples);
    }
}

fn run(case: &str, kind: EngineKind, src: &str, view: &Arc<KvView>, samples: usize) {
    let t = Template::from_source(Path::new("bench"), src, kind).expect("template compiles");
    let bytes = t.render(Arc::clone(view)).expect("renders").len();
    let mut times: Vec<Duration> = (0..samples)
        .map(|_| {
            let start = Instant::now();
            let out = t.render(Arc::clone(view)).expect("renders");
            std::hint::black_box(out);
            start.elapsed()
        })
        .collect();
    times.sort();
    let pct = |p: usize| times[(times.len() * p / 100).min(times.len() - 1)].as_secs_f64() * 1e3;
    println!(
        "{case:<28} {:<8} {:>8.3} {:>8.3} {:>8.3} {bytes:>7}",
        format!("{kind:?}"),
        pct(50),
        pct(90),
        pct(99)
    );
}

fn upstream_view(n: usize) -> Arc<KvView> {
    let entries: BTreeMap<String, String> = (0..n)
        .map(|i| {
            (
                format!("/services/web/host{i:05}"),
                format!("10.{}.{}.{}:80", i / 65536, (i / 256) % 256, i % 256),
            )
        })
        .collect();
    Arc::new(KvView::new(1, "/", entries))
}

fn proxy_view(services: usize, backends: usize) -> Arc<KvView> {
    let mut entries = BTreeMap::new();
    for s in 0..services {
        for b in 0..backends {
            entries.insert(
                format!("/svc/app{s:03}/b{b:02}"),
                format!("10.0.{s}.{b}:8080"),
            );
        }
    }
    Arc::new(KvView::new(1, "/", entries))
}
