//! The file store, on a shared directory (`file:///…`, always) and on an
//! S3-compatible server (`s3://…`, a `moto_server` this test starts on a
//! free loopback port): files round-trip byte for byte through streamed
//! puts, gets to spool files and chunk streams (a file larger than one part
//! included), small files in memory under a limit, outcomes through
//! `layout`, deletes, and keys that are no plain relative path refused.
//! Without `moto_server` the S3 test says loudly that it was skipped, and
//! fails under CI=true (`.ci/run` installs `moto[server]`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

use futures_util::StreamExt;
use ledgerline_files::{layout, FileStore, FilesError, ObjectFiles};

fn temp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ledgerline-files-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// 20 MiB + 3 bytes of a pattern: several 8 MiB parts and a short last one.
fn big() -> Vec<u8> {
    (0..(20 << 20) + 3)
        .map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect()
}

/// What every file store must do; `local` is a scratch directory.
async fn exercise(files: &dyn FileStore, local: &Path) {
    let big = big();
    let src = local.join("big.bin");
    std::fs::write(&src, &big).unwrap();
    assert_eq!(
        files.put_file("uploads/big", &src).await.unwrap(),
        big.len() as u64
    );
    let spool = local.join("spool.bin");
    assert_eq!(
        files.get_to_file("uploads/big", &spool).await.unwrap(),
        Some(big.len() as u64)
    );
    assert_eq!(std::fs::read(&spool).unwrap(), big, "spooled bytes differ");
    assert!(!spool.with_extension("part").exists());
    let mut stream = files.get_stream("uploads/big").await.unwrap().unwrap();
    let mut streamed = Vec::new();
    while let Some(chunk) = stream.next().await {
        streamed.extend_from_slice(&chunk.unwrap());
    }
    assert_eq!(streamed, big, "streamed bytes differ");
    assert!(files.get_stream("uploads/none").await.unwrap().is_none());

    // Small things in memory, bounded.
    files
        .put_bytes("jobs/j/report.json", "{\"a\":1}".into())
        .await
        .unwrap();
    let got = files
        .get_bytes("jobs/j/report.json", 100)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&got[..], b"{\"a\":1}");
    assert!(
        files.get_bytes("jobs/j/report.json", 3).await.is_err(),
        "over the limit was read"
    );
    assert!(files
        .get_bytes("jobs/j/none.json", 100)
        .await
        .unwrap()
        .is_none());
    assert_eq!(
        files
            .get_to_file("uploads/none", &local.join("x"))
            .await
            .unwrap(),
        None
    );

    // A file's outcome and its invoice ids, written twice (a task run
    // twice): read back once, as written.
    assert_eq!(layout::read_outcome(files, "job1", 0).await.unwrap(), None);
    for _ in 0..2 {
        layout::write_outcome(
            files,
            "job1",
            0,
            b"{\"rows\":3}".to_vec(),
            &["A".into(), "b\nc".into()],
        )
        .await
        .unwrap();
    }
    let (report, ids) = layout::read_outcome(files, "job1", 0)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(report, serde_json::json!({"rows": 3}));
    assert_eq!(ids, vec!["A".to_string(), "b\nc".to_string()]);

    // An empty file is a file.
    let empty = local.join("empty");
    std::fs::write(&empty, b"").unwrap();
    assert_eq!(files.put_file("uploads/empty", &empty).await.unwrap(), 0);
    assert_eq!(
        files
            .get_to_file("uploads/empty", &local.join("e2"))
            .await
            .unwrap(),
        Some(0)
    );

    // Moving a local file in: stored, and the local copy gone.
    let moved = local.join("moved.bin");
    std::fs::write(&moved, b"moved").unwrap();
    assert_eq!(files.put_moving("uploads/moved", &moved).await.unwrap(), 5);
    assert!(!moved.exists(), "the local file was left behind");
    assert_eq!(
        &files.get_bytes("uploads/moved", 10).await.unwrap().unwrap()[..],
        b"moved"
    );

    assert!(files.delete("uploads/big").await.unwrap());
    assert!(!files.delete("uploads/big").await.unwrap());
    assert!(files
        .get_bytes("uploads/big", 1 << 30)
        .await
        .unwrap()
        .is_none());

    for bad in ["", "../x", "a/../b", "/etc/passwd", "a//b", "a\\b", "./a"] {
        let e = files.put_bytes(bad, "x".into()).await.unwrap_err();
        assert!(matches!(e, FilesError::BadKey(_)), "{bad:?}: {e}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_round_trip_through_a_shared_directory() {
    let root = temp("store");
    let local = temp("local");
    let files = ObjectFiles::open(&format!("file://{}", root.display())).unwrap();
    assert!(files.url().starts_with("file:///"));
    exercise(&files, &local).await;

    // A directory store says where a key is, so readers open it in place.
    let at = files.local_path("uploads/moved").unwrap();
    assert_eq!(
        at,
        std::fs::canonicalize(&root).unwrap().join("uploads/moved")
    );
    assert_eq!(std::fs::read(&at).unwrap(), b"moved");
    assert_eq!(files.local_path("../x"), None);
    assert!(!root.join("uploads/big").exists());

    assert!(matches!(
        ObjectFiles::open("s4://x"),
        Err(FilesError::Unsupported(_))
    ));
    assert!(matches!(
        ObjectFiles::open("file://relative"),
        Err(FilesError::Unsupported(_))
    ));
    std::fs::remove_dir_all(&root).unwrap();
    std::fs::remove_dir_all(&local).unwrap();
}

/// A `moto_server` (S3-compatible, in memory) on a free loopback port,
/// killed when dropped.
struct Moto(std::process::Child, u16);

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_moto() -> Option<Moto> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = match std::process::Command::new("moto_server")
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            let why =
                format!("moto_server cannot be started ({e}); the S3 file store is not tested");
            assert!(std::env::var("CI").as_deref() != Ok("true"), "{why}");
            eprintln!("NOTICE: check skipped: {why}");
            return None;
        }
    };
    let moto = Moto(child, port);
    let started = std::time::Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "moto_server did not start"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    Some(moto)
}

/// Creates `bucket` (moto takes an unsigned request).
fn create_bucket(port: u16, bucket: &str) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "PUT /{bucket} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[cfg(feature = "s3")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_round_trip_through_s3() {
    let Some(moto) = start_moto() else { return };
    create_bucket(moto.1, "ledgerline");
    let endpoint = format!("http://127.0.0.1:{}", moto.1);
    let options = [
        ("aws_endpoint", endpoint.as_str()),
        ("aws_allow_http", "true"),
        ("aws_region", "us-east-1"),
        ("aws_access_key_id", "test"),
        ("aws_secret_access_key", "test"),
    ];
    let files = ObjectFiles::open_with_options("s3://ledgerline/deploy-a", &options).unwrap();
    assert_eq!(files.url(), "s3://ledgerline/deploy-a");
    let local = temp("s3-local");
    exercise(&files, &local).await;
    assert_eq!(
        files.local_path("uploads/moved"),
        None,
        "S3 is no local directory"
    );
    // Keys live under the prefix: another prefix sees none of them.
    let other = ObjectFiles::open_with_options("s3://ledgerline/deploy-b", &options).unwrap();
    assert!(other
        .get_bytes("uploads/moved", 10)
        .await
        .unwrap()
        .is_none());
    assert!(matches!(
        ObjectFiles::open_with_options("s3://", &options),
        Err(FilesError::Unsupported(_))
    ));
    std::fs::remove_dir_all(&local).unwrap();
}

#[cfg(not(feature = "s3"))]
#[test]
fn files_round_trip_through_s3() {
    let why = "built without the s3 feature; the S3 file store is not tested";
    assert!(std::env::var("CI").as_deref() != Ok("true"), "{why}");
    eprintln!("NOTICE: check skipped: {why}");
    let _ = (start_moto, create_bucket);
}
