//! The standard `process_*` metrics, read from `/proc/self` at scrape time. The Rust
//! `prometheus-client` crate has no process collector and no maintained crate provides one
//! for it, so this reads the few fields itself (as the Go and Python clients do).

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

/// The process collector.
#[derive(Debug)]
pub(super) struct Process;

/// What `/proc/self/stat` and friends say.
#[derive(Debug, Default, PartialEq)]
struct Sample {
    cpu_seconds: f64,
    start_time_seconds: f64,
    resident_bytes: f64,
    virtual_bytes: f64,
    open_fds: f64,
    max_fds: f64,
}

fn sysconf(var: nix::unistd::SysconfVar) -> Option<f64> {
    nix::unistd::sysconf(var).ok().flatten().map(|v| v as f64)
}

/// Parses `/proc/self/stat`: the fields after the command name (which may hold spaces and
/// parentheses, so everything up to the last `)` is skipped).
fn parse_stat(stat: &str, tick: f64, page: f64, boot_time: f64) -> Option<Sample> {
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14, 15 (utime, stime), 22 (starttime), 23 (vsize), 24 (rss) of proc(5); `rest`
    // starts at field 3.
    let num = |i: usize| f.get(i - 3)?.parse::<f64>().ok();
    Some(Sample {
        cpu_seconds: (num(14)? + num(15)?) / tick,
        start_time_seconds: boot_time + num(22)? / tick,
        virtual_bytes: num(23)?,
        resident_bytes: num(24)? * page,
        ..Sample::default()
    })
}

fn sample() -> Option<Sample> {
    let tick = sysconf(nix::unistd::SysconfVar::CLK_TCK)?;
    let page = sysconf(nix::unistd::SysconfVar::PAGE_SIZE)?;
    let boot_time = std::fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse::<f64>()
        .ok()?;
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let mut s = parse_stat(&stat, tick, page, boot_time)?;
    s.open_fds = std::fs::read_dir("/proc/self/fd").ok()?.count() as f64;
    s.max_fds = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .map_or(0.0, |(soft, _)| soft as f64);
    Some(s)
}

fn gauge(e: &mut DescriptorEncoder, name: &str, help: &str, v: f64) -> std::fmt::Result {
    let g = ConstGauge::new(v);
    g.encode(e.encode_descriptor(name, help, None, g.metric_type())?)
}

impl Collector for Process {
    fn encode(&self, mut e: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(s) = sample() else { return Ok(()) };
        let cpu = ConstCounter::new(s.cpu_seconds);
        cpu.encode(e.encode_descriptor(
            "process_cpu_seconds",
            "Total user and system CPU time spent in seconds",
            None,
            cpu.metric_type(),
        )?)?;
        gauge(
            &mut e,
            "process_resident_memory_bytes",
            "Resident memory size in bytes",
            s.resident_bytes,
        )?;
        gauge(
            &mut e,
            "process_virtual_memory_bytes",
            "Virtual memory size in bytes",
            s.virtual_bytes,
        )?;
        gauge(
            &mut e,
            "process_open_fds",
            "Number of open file descriptors",
            s.open_fds,
        )?;
        gauge(
            &mut e,
            "process_max_fds",
            "Maximum number of open file descriptors",
            s.max_fds,
        )?;
        gauge(
            &mut e,
            "process_start_time_seconds",
            "Start time of the process since unix epoch in seconds",
            s.start_time_seconds,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_found_after_a_command_name_with_spaces() {
        let stat = "42 (re conf) d) S 1 42 42 0 -1 4194560 500 0 0 0 150 50 0 0 20 0 3 0 1000 123456789 2048 18446744073709551615";
        let s = parse_stat(stat, 100.0, 4096.0, 1_700_000_000.0).unwrap();
        assert_eq!(s.cpu_seconds, 2.0);
        assert_eq!(s.start_time_seconds, 1_700_000_010.0);
        assert_eq!(s.virtual_bytes, 123_456_789.0);
        assert_eq!(s.resident_bytes, 2048.0 * 4096.0);
    }

    #[test]
    fn this_process_can_be_sampled() {
        let s = sample().expect("/proc/self readable");
        assert!(s.resident_bytes > 0.0 && s.open_fds > 0.0 && s.start_time_seconds > 0.0);
    }
}
