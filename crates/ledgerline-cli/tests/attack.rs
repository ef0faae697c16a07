//! The API under attack (issue 9): slow clients, broken and truncated
//! bodies, hostile names, oversized and malformed JSON, floods. Each test
//! starts its own server on an ephemeral 127.0.0.1 port and checks that
//! it answers in the API's shape, keeps nothing half-written, and stays
//! responsive.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::Server;
use serde_json::{json, Value};

trait Attacked {
    /// Files in the uploads directory (complete or not).
    fn uploads(&self) -> Vec<String>;
    /// Still running and answering health.
    fn alive(&mut self);
}

impl Attacked for Server {
    fn uploads(&self) -> Vec<String> {
        std::fs::read_dir(self.data.join("uploads"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect()
    }

    fn alive(&mut self) {
        assert!(self.child.try_wait().unwrap().is_none(), "the server died");
        let r = reqwest::blocking::get(format!("{}/v1/health", self.url)).unwrap();
        assert_eq!(r.status(), 200);
    }
}

/// Sends raw bytes, then reads the answer's status line (None when the
/// server closed the connection without one).
fn raw(addr: &str, bytes: &[u8]) -> Option<String> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let _ = s.write_all(bytes);
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    let text = String::from_utf8_lossy(&answer);
    text.lines()
        .next()
        .filter(|l| l.starts_with("HTTP/"))
        .map(str::to_string)
}

fn error_code(r: reqwest::blocking::Response) -> (u16, String) {
    let status = r.status().as_u16();
    let body: Value = r.json().unwrap_or(Value::Null);
    (
        status,
        body["error"]["code"].as_str().unwrap_or("").to_string(),
    )
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn slow_headers_are_cut_off_and_others_are_served() {
    let mut server = Server::fresh(&["--header-timeout", "2"]);
    let mut slow = TcpStream::connect(&server.addr).unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let started = Instant::now();
    let mut cut = false;
    for b in b"GET /v1/health HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n" {
        if slow.write_all(&[*b]).is_err() {
            cut = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
        // Meanwhile everyone else is served at once.
        if started.elapsed() < Duration::from_millis(600) {
            server.alive();
        }
        if started.elapsed() > Duration::from_secs(6) {
            break;
        }
    }
    if !cut {
        let mut rest = Vec::new();
        let n = slow.read_to_end(&mut rest).unwrap_or(0);
        let text = String::from_utf8_lossy(&rest[..n]);
        // Cut off: closed, or a 408, never a 200 for the trickled request.
        assert!(!text.contains("200 OK"), "{text}");
    }
    assert!(started.elapsed() < Duration::from_secs(9), "not cut off");
    server.alive();
}

#[test]
fn broken_bodies_keep_nothing() {
    let mut server = Server::fresh(&[]);
    let file = std::fs::read(root().join("fixtures/invoices_10k.csv")).unwrap();

    // An upload that stops halfway: the connection closes mid-body.
    let mut s = TcpStream::connect(&server.addr).unwrap();
    write!(
        s,
        "POST /v1/files?name=half.csv HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\nContent-Length: {}\r\n\r\n",
        file.len()
    )
    .unwrap();
    s.write_all(&file[..file.len() / 2]).unwrap();
    drop(s);

    // Truncated multipart: the closing boundary never comes.
    let boundary = "XyZ";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"t.csv\"\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(&file[..5000]);
    let head = format!(
        "POST /v1/files HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let status = raw(&server.addr, &[head.as_bytes(), &body].concat()).unwrap();
    assert!(status.contains(" 400 "), "{status}");

    // Malformed multipart: no boundary at all, garbage parts.
    let client = reqwest::blocking::Client::new();
    for (content_type, body) in [
        ("multipart/form-data", b"garbage".to_vec()),
        (
            "multipart/form-data; boundary=abc",
            b"--abc\r\nno headers end".to_vec(),
        ),
        ("multipart/form-data; boundary=abc", b"--abc--\r\n".to_vec()),
    ] {
        let r = client
            .post(format!("{}/v1/files", server.url))
            .header("content-type", content_type)
            .body(body)
            .send()
            .unwrap();
        let (status, code) = error_code(r);
        assert!((400..500).contains(&status), "{content_type}: {status}");
        assert!(!code.is_empty(), "{content_type}: no error body");
    }
    // A second part fails: the first, already complete, is not kept either.
    let form = reqwest::blocking::multipart::Form::new()
        .part(
            "file",
            reqwest::blocking::multipart::Part::bytes(file.clone()).file_name("ok.csv"),
        )
        .part(
            "file",
            reqwest::blocking::multipart::Part::bytes(Vec::new()).file_name("empty.csv"),
        );
    let r = client
        .post(format!("{}/v1/files", server.url))
        .multipart(form)
        .send()
        .unwrap();
    assert_eq!(error_code(r), (422, "empty_file".into()));

    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        server.uploads(),
        Vec::<String>::new(),
        "something half-written was kept"
    );
    server.alive();
}

#[test]
fn hostile_names_never_become_paths() {
    let mut server = Server::fresh(&[]);
    let client = reqwest::blocking::Client::new();
    let file = std::fs::read(root().join("fixtures/csv/basic_valid.csv")).unwrap();
    let upload = |name: &str| {
        let url =
            reqwest::Url::parse_with_params(&format!("{}/v1/files", server.url), [("name", name)])
                .unwrap();
        client.post(url).body(file.clone()).send().unwrap()
    };
    let outside = server.data.parent().unwrap().join("escaped.csv");
    for name in [
        "../escaped.csv",
        "../../../../tmp/escaped.csv",
        "/etc/passwd",
        "\u{202e}vsc.exe",
        "a/b\\c.csv",
    ] {
        let r = upload(name);
        assert_eq!(r.status(), 201, "{name}");
        let body: Value = r.json().unwrap();
        let info = &body["files"][0];
        assert_eq!(info["name"], name);
        let id = info["id"].as_str().unwrap();
        assert!(ledgerline_store::is_id(id));
        assert!(server.data.join("uploads").join(id).is_file());
    }
    assert!(!outside.exists());
    assert!(!Path::new("/tmp/escaped.csv").exists());
    for name in ["a\0b.csv", &"x".repeat(10 * 1024), "line\nbreak.csv", ""] {
        let (status, code) = error_code(upload(name));
        assert_eq!(
            (status, code.as_str()),
            (422, "invalid_request"),
            "{:?}",
            &name[..name.len().min(20)]
        );
    }
    // Only the five accepted uploads are on disk, named by their ids.
    let files = server.uploads();
    assert_eq!(files.len(), 5, "{files:?}");
    assert!(files.iter().all(|f| ledgerline_store::is_id(f)));
    server.alive();
}

#[test]
fn oversized_and_malformed_json_is_refused() {
    let mut server = Server::fresh(&[]);
    let client = reqwest::blocking::Client::new();
    let bulk = |body: Vec<u8>| {
        client
            .post(format!("{}/v1/bulk-process", server.url))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .unwrap()
    };
    // A 100 MB body: refused from its declared length, before it is read.
    let head = format!(
        "POST /v1/bulk-process HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        100_000_000
    );
    let started = Instant::now();
    let status = raw(&server.addr, head.as_bytes()).unwrap();
    assert!(status.contains(" 413 "), "{status}");
    assert!(started.elapsed() < Duration::from_secs(5));
    // 100,000 file ids (about 4 MB).
    let ids: Vec<String> = (0..100_000).map(|_| ledgerline_store::new_id()).collect();
    let (status, code) = error_code(bulk(serde_json::to_vec(&json!({"file_ids": ids})).unwrap()));
    assert_eq!((status, code.as_str()), (413, "too_large"));
    // 10,001 ids fit the body limit but not a job.
    let ids: Vec<String> = (0..10_001).map(|_| ledgerline_store::new_id()).collect();
    let (status, code) = error_code(bulk(serde_json::to_vec(&json!({"file_ids": ids})).unwrap()));
    assert_eq!((status, code.as_str()), (422, "invalid_request"));
    for body in [
        json!({"file_ids": ["a"], "unknown": 1}),
        json!({"file_ids": "a"}),
        json!({"file_ids": ["a"], "use_optimized": "yes"}),
        json!({"file_ids": ["a"], "settings": "dmy"}),
        json!({"file_ids": []}),
        json!([1, 2, 3]),
    ] {
        let (status, code) = error_code(bulk(serde_json::to_vec(&body).unwrap()));
        assert_eq!((status, code.as_str()), (422, "invalid_request"), "{body}");
    }
    for body in [
        &b"{"[..],
        b"\xff\xfe",
        b"",
        b"{\"file_ids\": [\"a\"]} trailing",
    ] {
        let (status, code) = error_code(bulk(body.to_vec()));
        assert_eq!((status, code.as_str()), (400, "bad_request"), "{body:?}");
    }
    let r = client
        .post(format!("{}/v1/bulk-process", server.url))
        .body(r#"{"file_ids": ["a"]}"#)
        .send()
        .unwrap();
    let (status, code) = error_code(r);
    assert_eq!(
        (status, code.as_str()),
        (400, "bad_request"),
        "no content type"
    );
    server.alive();
}

#[test]
fn a_flood_from_one_client_is_limited_and_others_are_served() {
    let mut server = Server::fresh(&["--rate-limit", "100"]);
    let url = format!("{}/v1/files/{}", server.url, ledgerline_store::new_id());
    let flood = {
        let url = url.clone();
        std::thread::spawn(move || {
            let client = reqwest::blocking::Client::new();
            let (mut limited, mut other) = (0, 0);
            let started = Instant::now();
            let mut sent = 0;
            while started.elapsed() < Duration::from_secs(2) {
                match client.get(&url).send().unwrap().status().as_u16() {
                    429 => limited += 1,
                    404 => other += 1,
                    s => panic!("flood got {s}"),
                }
                sent += 1;
            }
            (sent, limited, other)
        })
    };
    // Another client, from another loopback address, meanwhile.
    let other = reqwest::blocking::Client::builder()
        .local_address(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)))
        .build()
        .unwrap();
    let mut worst = Duration::ZERO;
    for _ in 0..40 {
        let t = Instant::now();
        let status = other.get(&url).send().unwrap().status();
        worst = worst.max(t.elapsed());
        assert_eq!(status, 404, "the other client was limited");
        std::thread::sleep(Duration::from_millis(25));
    }
    let (sent, limited, served) = flood.join().unwrap();
    assert!(sent >= 1000, "the flood sent only {sent} requests in 2 s");
    assert!(
        limited > 0 && served > 0,
        "{limited} limited, {served} served"
    );
    // About 100/s after a burst of 200: at most ~400 served in 2 s.
    assert!(served <= 450, "{served} served of {sent}");
    assert!(
        worst < Duration::from_secs(1),
        "the other client waited {worst:?}"
    );
    server.alive();
}
