//! A dead sink (stdout is a pipe nobody reads) costs only its own output: the other sink gets
//! every value, the drops are counted, ingest goes on, and shutdown still ends, bounded by
//! `sink_drain_timeout`.

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::harness::{Launch, Sheaf, totals};

#[test]
fn a_dead_sink_does_not_cost_the_other_sinks_or_ingest_anything() {
    // Handler 0 is the harness's JSON file; handler 1 writes to stdout, a pipe this test never
    // reads, so it blocks once the pipe is full.
    let sheaf = Sheaf::launch(
        "dead-sink",
        Launch {
            aggregator: "      - json: {path: \"-\"}\n  default_storage_policies: [\"1s:1h\"]\n  flush_manager: {jitter_enabled: false}\n",
            top: "data_plane: {flush_batch_values: 16, sink_queue_batches: 32, sink_enqueue_timeout: 200ms, sink_drain_timeout: 2s}\n",
            stdout_piped: true,
            ..Launch::default()
        },
    );
    let series = 3000;
    let mut tcp = TcpStream::connect(sheaf.statsd).unwrap();
    for round in 0..3 {
        for i in 0..series {
            writeln!(tcp, "dead.sink.{i}:1|c").unwrap();
        }
        tcp.flush().unwrap();
        // Let a flush round pass between rounds so the dead sink's queue fills up.
        if round < 2 {
            std::thread::sleep(Duration::from_millis(1200));
        }
    }
    drop(tcp);
    // Ingest goes on behind the dead sink.
    sheaf.wait_metric("sheaf_ingested_values_total", &[], (3 * series) as f64);
    let started = Instant::now();
    while sheaf.metric("sheaf_sink_dropped_values_total", &[("sink", "json-1"), ("reason", "queue_full")]) == 0.0 {
        assert!(started.elapsed() < Duration::from_secs(30), "the dead sink's drops were not counted");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Shutdown ends (exit 0) although the dead sink never drains; the file sink has everything.
    let got = totals(&sheaf.stop());
    for i in 0..series {
        assert_eq!(got.get(&(format!("dead.sink.{i}"), "sum".to_string())).copied(), Some(3.0), "dead.sink.{i}");
    }
}
