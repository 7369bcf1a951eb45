//! Reads sheaf's `GET /metrics` (Prometheus text) with a bare HTTP/1.0 request over a
//! `TcpStream` and sums the families the report needs over all their label sets.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use anyhow::Context;

/// Sums over every core, protocol and reason.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Snapshot {
    /// `sheaf_ingested_values_total`.
    pub(crate) ingested: f64,
    /// `sheaf_rejected_values_total`.
    pub(crate) rejected: f64,
    /// `sheaf_values_applied_total`.
    pub(crate) applied: f64,
    /// `sheaf_sink_dropped_values_total`.
    pub(crate) sink_dropped: f64,
}

/// `GET http://addr/metrics`.
pub(crate) fn scrape(addr: SocketAddr) -> anyhow::Result<Snapshot> {
    let body = get(addr, "/metrics")?;
    Ok(parse(&body))
}

fn get(addr: SocketAddr, path: &str) -> anyhow::Result<String> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).context("connecting")?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.set_write_timeout(Some(Duration::from_secs(5)))?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\nConnection: close\r\n\r\n")?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).context("reading the response")?;
    let response = String::from_utf8_lossy(&response);
    let (head, body) = response.split_once("\r\n\r\n").context("no end of headers in the response")?;
    let status = head.lines().next().unwrap_or_default();
    anyhow::ensure!(status.split_whitespace().nth(1) == Some("200"), "GET {path}: {status}");
    Ok(body.to_string())
}

/// Sums the samples of the families in [`Snapshot`]; other lines are ignored.
pub(crate) fn parse(text: &str) -> Snapshot {
    let mut s = Snapshot::default();
    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        let name_end = line.find(['{', ' ']).unwrap_or(line.len());
        let slot = match &line[..name_end] {
            "sheaf_ingested_values_total" => &mut s.ingested,
            "sheaf_rejected_values_total" => &mut s.rejected,
            "sheaf_values_applied_total" => &mut s.applied,
            "sheaf_sink_dropped_values_total" => &mut s.sink_dropped,
            _ => continue,
        };
        // The value is the first field after the labels (a timestamp may follow).
        let rest = match line[name_end..].rfind('}') {
            Some(i) if line[name_end..].starts_with('{') => &line[name_end + i + 1..],
            _ => &line[name_end..],
        };
        if let Some(v) = rest.split_whitespace().next().and_then(|v| v.parse::<f64>().ok())
            && v.is_finite()
        {
            *slot += v;
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_families_over_labels() {
        let text = "# HELP sheaf_ingested_values_total x\n# TYPE sheaf_ingested_values_total counter\n\
            sheaf_ingested_values_total{core=\"0\",protocol=\"statsd_udp\"} 10\n\
            sheaf_ingested_values_total{core=\"1\",protocol=\"m3msg\"} 5\n\
            sheaf_rejected_values_total{core=\"0\",protocol=\"any\",reason=\"a}b\"} 2\n\
            sheaf_values_applied_total{core=\"0\"} 7 1700000000\n\
            sheaf_ingested_values_total_other 100\n\
            sheaf_uptime_seconds 3.5\n";
        let s = parse(text);
        assert_eq!(s, Snapshot { ingested: 15.0, rejected: 2.0, applied: 7.0, sink_dropped: 0.0 });
    }
}
