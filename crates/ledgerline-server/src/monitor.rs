//! Monitoring: the Prometheus text at `GET /metrics`.
//!
//! Counters and histograms are recorded where things happen (uploads,
//! files, jobs) through the `metrics` facade; gauges that describe the
//! present (jobs by state, process memory and CPU) are read when scraped.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Seconds buckets for processing times: 1 ms to about 17 minutes.
const SECONDS_BUCKETS: [f64; 12] = [
    0.001, 0.005, 0.025, 0.1, 0.25, 1.0, 2.5, 10.0, 30.0, 60.0, 300.0, 1000.0,
];

/// The process-wide recorder (one per process, whatever the number of
/// servers started in it, as in tests).
pub(crate) fn handle() -> Option<&'static PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".to_string()), &SECONDS_BUCKETS)
                .ok()?;
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).ok()?;
            describe();
            Some(handle)
        })
        .as_ref()
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_gauge!("ledgerline_jobs", "Jobs in the store by state");
    describe_gauge!("ledgerline_queue_depth", "Jobs waiting to start");
    describe_counter!("ledgerline_uploads_total", "Uploads accepted");
    describe_counter!(
        "ledgerline_upload_bytes_total",
        Unit::Bytes,
        "Bytes of accepted uploads"
    );
    describe_counter!(
        "ledgerline_uploads_refused_total",
        "Uploads refused, by reason"
    );
    describe_counter!(
        "ledgerline_files_processed_total",
        "Files processed, by processor and outcome"
    );
    describe_counter!(
        "ledgerline_rows_processed_total",
        "Rows of processed files, by processor"
    );
    describe_counter!(
        "ledgerline_bytes_read_total",
        Unit::Bytes,
        "Bytes of processed files, by processor"
    );
    describe_histogram!(
        "ledgerline_file_processing_seconds",
        Unit::Seconds,
        "Time to process one file, by processor"
    );
    describe_histogram!(
        "ledgerline_job_processing_seconds",
        Unit::Seconds,
        "Time to run one job, by processor"
    );
    describe_counter!("ledgerline_jobs_finished_total", "Jobs ended, by state");
    describe_counter!(
        "ledgerline_governor_throttle_events_total",
        "Times the governor held readers back near the memory budget"
    );
    describe_gauge!(
        "ledgerline_job_peak_memory_bytes",
        Unit::Bytes,
        "Peak resident memory seen by the last job"
    );
    describe_gauge!(
        "ledgerline_process_resident_memory_bytes",
        Unit::Bytes,
        "Resident memory of the server process"
    );
    describe_gauge!(
        "ledgerline_process_cpu_seconds",
        Unit::Seconds,
        "CPU time used by the server process"
    );
}

/// Sets the gauges that describe the present, then renders everything.
pub(crate) fn render(jobs: &[(ledgerline_api::JobState, u64)]) -> String {
    let Some(handle) = handle() else {
        return String::new();
    };
    for (state, n) in jobs {
        metrics::gauge!("ledgerline_jobs", "state" => state.as_str()).set(*n as f64);
        if *state == ledgerline_api::JobState::Queued {
            metrics::gauge!("ledgerline_queue_depth").set(*n as f64);
        }
    }
    let usage = ledgerline_governor::process_usage();
    metrics::gauge!("ledgerline_process_resident_memory_bytes").set(usage.resident_bytes as f64);
    metrics::gauge!("ledgerline_process_cpu_seconds").set(usage.cpu_millis as f64 / 1000.0);
    handle.render()
}
