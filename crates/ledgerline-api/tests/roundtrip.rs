//! Every API type serializes and deserializes to the same value, in the
//! JSON shape SPEC §12 gives (field names checked by hand against it).

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use ledgerline_api::*;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::json;

fn round_trip<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(
    value: &T,
    shape: serde_json::Value,
) {
    let json = serde_json::to_value(value).unwrap();
    assert_eq!(json, shape);
    let back: T = serde_json::from_value(json).unwrap();
    assert_eq!(&back, value);
}

#[test]
fn every_type_round_trips_in_the_spec_shape() {
    round_trip(
        &ErrorBody::new("not_found", "no job"),
        json!({"error": {"code": "not_found", "message": "no job"}}),
    );
    round_trip(
        &Health {
            status: "ok".into(),
            version: "0.1.0".into(),
            store: "embedded".into(),
            queue: QueueCounts {
                queued: 2,
                running: 1,
            },
        },
        json!({"status": "ok", "version": "0.1.0", "store": "embedded",
               "queue": {"queued": 2, "running": 1}}),
    );
    let file = FileInfo {
        id: "01234567-89ab-cdef-0123-456789abcdef".into(),
        name: "a.csv".into(),
        size: 10,
        sha256: "ab".repeat(32),
        format: "csv".into(),
    };
    round_trip(
        &UploadResponse {
            files: vec![file.clone()],
        },
        json!({"files": [{"id": file.id, "name": "a.csv", "size": 10,
                          "sha256": "ab".repeat(32), "format": "csv"}]}),
    );
    round_trip(
        &BulkRequest {
            file_ids: vec!["x".into()],
            use_optimized: false,
            settings: BTreeMap::from([("date_order".into(), json!("dmy"))]),
            outputs: Default::default(),
        },
        json!({"file_ids": ["x"], "use_optimized": false, "settings": {"date_order": "dmy"}}),
    );
    round_trip(
        &BulkRequest {
            file_ids: vec!["x".into()],
            use_optimized: true,
            settings: BTreeMap::new(),
            outputs: ledgerline_api::JobOutputs {
                rejects: Some(ledgerline_api::RejectsKind::Xlsx),
                valid: Some(ledgerline_api::ValidKind::Jsonl),
                load: false,
            },
        },
        json!({"file_ids": ["x"], "use_optimized": true, "settings": {},
               "outputs": {"rejects": "xlsx", "valid": "jsonl"}}),
    );
    // Only the known kinds and keys.
    for bad in [
        json!({"file_ids": ["x"], "outputs": {"rejects": "pdf"}}),
        json!({"file_ids": ["x"], "outputs": {"valid": "csv", "upload": true}}),
        json!({"file_ids": ["x"], "outputs": {"load": "yes"}}),
    ] {
        assert!(serde_json::from_value::<BulkRequest>(bad).is_err());
    }
    round_trip(
        &JobAccepted {
            job_id: "j".into(),
            status_url: "/v1/jobs/j".into(),
            report_url: "/v1/jobs/j/report".into(),
        },
        json!({"job_id": "j", "status_url": "/v1/jobs/j", "report_url": "/v1/jobs/j/report"}),
    );
    let status = JobStatus {
        job_id: "j".into(),
        state: JobState::Running,
        use_optimized: true,
        progress: JobProgress {
            files_total: 2,
            files_done: 1,
            bytes_total: 30,
            bytes_done: 20,
            rows_done: 7,
            percent: 66.6,
        },
        files: vec![JobFile {
            file_id: "f".into(),
            name: "a.csv".into(),
            state: FileState::Done,
            bytes_done: 10,
            rows_done: 5,
        }],
        created_at: "2026-12-05T04:00:00.000Z".into(),
        started_at: Some("2026-12-05T04:00:01.000Z".into()),
        finished_at: None,
        metrics: json!({"processor": "optimized"}),
        error: None,
        outputs: Default::default(),
    };
    round_trip(
        &status,
        json!({"job_id": "j", "state": "running", "use_optimized": true,
               "progress": {"files_total": 2, "files_done": 1, "bytes_total": 30,
                            "bytes_done": 20, "rows_done": 7, "percent": 66.6},
               "files": [{"file_id": "f", "name": "a.csv", "state": "done",
                          "bytes_done": 10, "rows_done": 5}],
               "created_at": "2026-12-05T04:00:00.000Z",
               "started_at": "2026-12-05T04:00:01.000Z", "finished_at": null,
               "metrics": {"processor": "optimized"}}),
    );
    for s in JobState::ALL {
        assert_eq!(JobState::parse(s.as_str()), Some(s));
        assert_eq!(serde_json::to_value(s).unwrap(), json!(s.as_str()));
    }
    for s in FileState::ALL {
        assert_eq!(FileState::parse(s.as_str()), Some(s));
        assert_eq!(serde_json::to_value(s).unwrap(), json!(s.as_str()));
    }
}

#[test]
fn bulk_requests_default_and_refuse_unknown_fields() {
    let r: BulkRequest = serde_json::from_value(json!({"file_ids": ["a"]})).unwrap();
    assert!(r.use_optimized);
    assert!(r.settings.is_empty());
    assert!(serde_json::from_value::<BulkRequest>(json!({"file_ids": [], "extra": 1})).is_err());
    assert!(serde_json::from_value::<BulkRequest>(json!({"file_ids": "a"})).is_err());
}

#[test]
fn settings_apply_by_spec_names() {
    let mut s = ledgerline_core::Settings::default();
    let given = BTreeMap::from([
        ("date-order".to_string(), json!("mdy")),
        ("max_errors".to_string(), json!(7)),
        ("null_values".to_string(), json!(["-", "n/a"])),
        ("map".to_string(), json!(["invoice_id=Nr", "currency=Cur"])),
        ("tolerance".to_string(), json!("0.05")),
    ]);
    apply_settings(&mut s, &given).unwrap();
    assert_eq!(s.date_order.as_str(), "mdy");
    assert_eq!(s.max_errors, 7);
    assert_eq!(s.null_values, ["-", "n/a"]);
    assert_eq!(s.column_map.len(), 2);
    assert_eq!(s.line_total_tolerance.as_deref(), Some("0.05"));
    for bad in [
        json!({"date_order": "ymd"}),
        json!({"processor": "standard"}),
        json!({"unknown": "1"}),
        json!({"max_errors": true}),
        json!({"max_errors": -1}),
        json!({"null_values": [1, {}]}),
    ] {
        let given: BTreeMap<String, serde_json::Value> =
            serde_json::from_value(bad.clone()).unwrap();
        let e = apply_settings(&mut ledgerline_core::Settings::default(), &given).unwrap_err();
        assert_eq!(e.code.as_str(), "invalid_settings", "{bad}");
    }
}

#[test]
fn progress_counts_finished_files_whole() {
    let file = |state, bytes_done| JobFile {
        file_id: String::new(),
        name: String::new(),
        state,
        bytes_done,
        rows_done: 1,
    };
    let files = [
        file(FileState::Done, 0),
        file(FileState::Running, 25),
        file(FileState::Queued, 0),
    ];
    let p = JobStatus::progress_from(&files, &[100, 100, 200]);
    // (100 + 25) / 400 = 31.25 % → 31.2 (floored to a tenth).
    assert_eq!(
        (p.files_done, p.bytes_done, p.bytes_total, p.rows_done),
        (1, 125, 400, 3)
    );
    assert_eq!(p.percent, 31.2);
    let empty = JobStatus::progress_from(&[file(FileState::Done, 0)], &[0]);
    assert_eq!(empty.percent, 100.0);
}
