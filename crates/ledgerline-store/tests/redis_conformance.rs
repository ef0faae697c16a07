//! The Redis store passes the same conformance suite as the embedded one,
//! against a `redis-server` this test starts on a free loopback port (and
//! stops). Without `redis-server` the test says so loudly, and fails under
//! CI=true (`.ci/run` installs it).

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ledgerline_store::{conformance, RedisStore, Store};

struct RedisServer(Child);

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A private redis-server on a free 127.0.0.1 port, nothing kept on disk.
fn start_redis() -> Option<(RedisServer, String)> {
    let port = TcpListener::bind("127.0.0.1:0")
        .ok()?
        .local_addr()
        .ok()?
        .port();
    let child = match Command::new("redis-server")
        .args([
            "--bind",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            let why =
                format!("redis-server cannot be started ({e}); the Redis store is not tested");
            assert!(std::env::var("CI").as_deref() != Ok("true"), "{why}");
            eprintln!("NOTICE: check skipped: {why}");
            return None;
        }
    };
    let server = RedisServer(child);
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "redis-server did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    Some((server, format!("redis://127.0.0.1:{port}/")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_store_passes_the_conformance_suite() {
    let Some((_server, url)) = start_redis() else {
        return;
    };
    let store = RedisStore::connect(&url, "ledgerline-test").await.unwrap();
    assert_eq!(store.kind(), "redis");
    conformance::run(conformance::Under::Tasks(&store))
        .await
        .unwrap();
    // Another prefix is another deployment: it sees none of it.
    let other = RedisStore::connect(&url, "other").await.unwrap();
    let by_state = other.jobs_by_state().await.unwrap();
    assert!(by_state.iter().all(|(_, n)| *n == 0), "{by_state:?}");
    conformance::run(conformance::Under::Tasks(&other))
        .await
        .unwrap();
    // A new connection (another process) sees the first deployment's jobs.
    let again = RedisStore::connect(&url, "ledgerline-test").await.unwrap();
    let total: u64 = again
        .jobs_by_state()
        .await
        .unwrap()
        .iter()
        .map(|(_, n)| n)
        .sum();
    assert!(total >= 7, "jobs lost: {total}");
}
