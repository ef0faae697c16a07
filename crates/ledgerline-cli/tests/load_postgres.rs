//! `--load postgres://…` end to end against a PostgreSQL server each test
//! starts for itself (`initdb` + `pg_ctl` on a free 127.0.0.1 port, in a
//! temporary folder, from the installed binaries): a million rows loaded
//! with per-currency sums equal to the report's totals, a second load of
//! the same file adding nothing, a load killed midway leaving no row of its
//! file, bulk loads keyed by content, API jobs asking for `"load": true`
//! (embedded and through Redis workers), and clear errors.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ledgerline"))
}

/// A private PostgreSQL server; stopped (immediately) and removed when
/// dropped.
struct Postgres {
    dir: PathBuf,
    port: u16,
    bin: PathBuf,
}

/// Where the server binaries are: `pg_ctl` on the PATH, else Debian's
/// folder of the newest installed major version.
fn pg_bin() -> Option<PathBuf> {
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if dir.join("initdb").exists() {
            return Some(dir);
        }
    }
    let mut majors: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| Some(e.ok()?.path().join("bin")))
        .filter(|d| d.join("initdb").exists())
        .collect();
    majors.sort();
    majors.pop()
}

/// Runs a server binary, as the `postgres` user when we are root
/// (PostgreSQL refuses to run as root).
fn as_owner(bin: &Path, tool: &str) -> Command {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0");
    if root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(bin.join(tool));
        c
    } else {
        Command::new(bin.join(tool))
    }
}

impl Postgres {
    fn start() -> Option<Postgres> {
        let Some(bin) = pg_bin() else {
            let why = "no PostgreSQL server binaries (initdb) installed";
            assert!(std::env::var("CI").as_deref() != Ok("true"), "{why}");
            eprintln!("NOTICE: check skipped: {why}");
            return None;
        };
        let dir = std::env::temp_dir().join(format!(
            "ledgerline-pg-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        // The server's user must own its folder.
        let _ = Command::new("chown")
            .args(["postgres:postgres"])
            .arg(&dir)
            .status();
        let data = dir.join("data");
        let out = as_owner(&bin, "initdb")
            .args([
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
                "-E",
                "UTF8",
                "-D",
            ])
            .arg(&data)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let options = format!(
            "-p {port} -c listen_addresses=127.0.0.1 -k {} -c fsync=off -c full_page_writes=off",
            dir.display()
        );
        let out = as_owner(&bin, "pg_ctl")
            .args(["-w", "-t", "60", "-D"])
            .arg(&data)
            .args(["-l"])
            .arg(dir.join("log"))
            .args(["-o", &options, "start"])
            .output()
            .unwrap();
        let pg = Postgres { dir, port, bin };
        assert!(
            out.status.success(),
            "pg_ctl start: {} {}",
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(pg.dir.join("log")).unwrap_or_default()
        );
        Some(pg)
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn client(&self) -> postgres::Client {
        postgres::Client::connect(&self.url(), postgres::NoTls).unwrap()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = as_owner(&self.bin, "pg_ctl")
            .args(["-m", "immediate", "-D"])
            .arg(self.dir.join("data"))
            .arg("stop")
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ledgerline-load-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A generated file of `rows` rows (with the generator's deliberate errors).
fn generated(dir: &Path, rows: u64, seed: u64) -> PathBuf {
    let out = bin()
        .current_dir(dir)
        .args([
            "gen",
            "--rows",
            &rows.to_string(),
            "--seed",
            &seed.to_string(),
        ])
        .args(["--out", "in"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    dir.join(format!("in/invoices-{rows}-rows.csv"))
}

fn process_json(args: &[&str]) -> (i32, serde_json::Value) {
    let out = bin()
        .arg("process")
        .args(args)
        .arg("--json")
        .output()
        .unwrap();
    let code = out.status.code().unwrap_or(-1);
    let value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("no JSON ({code}): {}", String::from_utf8_lossy(&out.stderr)));
    (code, value)
}

/// `currency → (lines, net, tax, gross)` as the report gives them.
fn report_totals(report: &serde_json::Value) -> BTreeMap<String, (i64, String, String, String)> {
    report["totals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["currency"].as_str().unwrap().to_string(),
                (
                    t["lines"].as_i64().unwrap(),
                    t["net"].as_str().unwrap().to_string(),
                    t["tax"].as_str().unwrap().to_string(),
                    t["gross"].as_str().unwrap().to_string(),
                ),
            )
        })
        .collect()
}

/// The same, summed by PostgreSQL over the loaded rows of one file.
fn table_totals(
    db: &mut postgres::Client,
    table: &str,
    sha: &str,
) -> BTreeMap<String, (i64, String, String, String)> {
    db.query(
        &format!(
            "SELECT currency, count(*), sum(net)::text, sum(tax)::text, sum(gross)::text \
             FROM {table} WHERE source_sha256 = $1 GROUP BY currency"
        ),
        &[&sha],
    )
    .unwrap()
    .iter()
    .map(|r| (r.get(0), (r.get(1), r.get(2), r.get(3), r.get(4))))
    .collect()
}

fn sha256(path: &Path) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(std::fs::read(path).unwrap()))
}

#[test]
fn a_million_rows_load_exactly_once() {
    let Some(pg) = Postgres::start() else { return };
    let dir = temp_dir("million");
    let file = generated(&dir, 1_000_000, 7);
    let f = file.to_str().unwrap();
    let (code, report) = process_json(&[f, "--load", &pg.url()]);
    assert!(code == 0 || code == 1, "{report}");
    let valid = report["rows"]["valid"].as_u64().unwrap();
    assert!(valid > 900_000, "{}", report["rows"]);
    assert_eq!(
        report["load"],
        serde_json::json!({"table": "invoice_lines", "inserted": valid, "already_loaded": 0})
    );
    let mut db = pg.client();
    let sha = sha256(&file);
    let totals = report_totals(&report);
    assert!(totals.len() > 1, "several currencies: {totals:?}");
    assert_eq!(table_totals(&mut db, "invoice_lines", &sha), totals);
    // Types as asked: NUMERIC money, DATE dates, the unique key.
    let types: Vec<(String, String)> = db
        .query(
            "SELECT column_name::text, data_type::text FROM information_schema.columns \
             WHERE table_name = 'invoice_lines' AND column_name IN \
             ('net', 'invoice_date', 'due_date', 'source_row') ORDER BY column_name",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        types,
        [
            ("due_date".into(), "date".into()),
            ("invoice_date".into(), "date".into()),
            ("net".into(), "numeric".into()),
            ("source_row".into(), "bigint".into())
        ]
    );

    // Again: nothing new, every row already there.
    let (_, again) = process_json(&[f, "--load", &pg.url()]);
    assert_eq!(
        again["load"],
        serde_json::json!({"table": "invoice_lines", "inserted": 0, "already_loaded": valid})
    );
    let count: i64 = db
        .query_one("SELECT count(*) FROM invoice_lines", &[])
        .unwrap()
        .get(0);
    assert_eq!(count as u64, valid);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn rows_load_as_normalized_and_only_clean_ones() {
    let Some(pg) = Postgres::start() else { return };
    let dir = temp_dir("rows");
    let file = dir.join("in.csv");
    // Row 3 is invalid (a bad date), row 5 contradicts its invoice's
    // anchor (row 4: another customer); rows 2, 4 and 6 are clean:
    // 2 × 10.005 = 20.01 EUR net (rounded), 10% tax = 2.00, gross 22.01;
    // 1 × 1 EUR, no tax; 3 × 100 JPY, 8% tax = 24, given line_total 324.
    std::fs::write(
        &file,
        "invoice_id,invoice_date,due_date,customer_id,quantity,unit_price,tax_rate,line_total,currency\n\
         A-1,2024-02-29,2024-03-30,C1,2,10.005,10%,,eur\n\
         A-2,2024-02-30,,C1,1,1,0,,EUR\n\
         A-3,2024-01-01,,C1,1,1,0,,EUR\n\
         A-3,2024-01-01,,C2,1,1,0,,EUR\n\
         B-1,2024-03-01,,C9,3,100,0.08,324,JPY\n",
    )
    .unwrap();
    // No schema `ledger` yet: said before anything is read.
    let out = bin()
        .arg("process")
        .arg(&file)
        .args(["--load", &pg.url(), "--table", "ledger.lines"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("cannot create table ledger.lines"), "{err}");
    let mut db = pg.client();
    db.batch_execute("CREATE SCHEMA ledger").unwrap();
    let (_, report) = process_json(&[
        file.to_str().unwrap(),
        "--load",
        &pg.url(),
        "--table",
        "ledger.lines",
    ]);
    assert_eq!(report["rows"]["valid"], 3, "{report}");
    assert_eq!(report["load"]["inserted"], 3, "{report}");
    let rows: Vec<Vec<Option<String>>> = db
        .query(
            "SELECT source_row::text, source_name, invoice_id, invoice_date::text, \
             due_date::text, customer_id, quantity::text, unit_price::text, tax_rate::text, \
             line_total::text, currency, net::text, tax::text, gross::text \
             FROM ledger.lines ORDER BY source_row",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (0..14).map(|i| r.get(i)).collect())
        .collect();
    let s = |v: &str| Some(v.to_string());
    assert_eq!(
        rows,
        [
            vec![
                s("2"),
                s(file.to_str().unwrap()),
                s("A-1"),
                s("2024-02-29"),
                s("2024-03-30"),
                s("C1"),
                s("2"),
                s("10.005"),
                s("0.10"),
                None,
                s("EUR"),
                s("20.01"),
                s("2.00"),
                s("22.01")
            ],
            vec![
                s("4"),
                s(file.to_str().unwrap()),
                s("A-3"),
                s("2024-01-01"),
                None,
                s("C1"),
                s("1"),
                s("1"),
                s("0"),
                None,
                s("EUR"),
                s("1.00"),
                s("0.00"),
                s("1.00")
            ],
            vec![
                s("6"),
                s(file.to_str().unwrap()),
                s("B-1"),
                s("2024-03-01"),
                None,
                s("C9"),
                s("3"),
                s("100"),
                s("0.08"),
                s("324"),
                s("JPY"),
                s("300"),
                s("24"),
                s("324")
            ]
        ]
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Waits until a COPY into PostgreSQL has taken rows.
fn wait_for_copy(db: &mut postgres::Client) {
    let started = Instant::now();
    loop {
        let copied: Option<i64> = db
            .query_one(
                "SELECT max(tuples_processed) FROM pg_stat_progress_copy",
                &[],
            )
            .unwrap()
            .get(0);
        if copied.unwrap_or(0) > 10_000 {
            return;
        }
        assert!(started.elapsed() < Duration::from_secs(120), "no COPY seen");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_load_killed_midway_leaves_no_row_of_its_file() {
    let Some(pg) = Postgres::start() else { return };
    let dir = temp_dir("killed");
    let file = generated(&dir, 1_000_000, 11);
    let mut child: Child = bin()
        .arg("process")
        .arg(&file)
        .args(["--load", &pg.url(), "--json"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut db = pg.client();
    wait_for_copy(&mut db);
    child.kill().unwrap();
    child.wait().unwrap();
    // The server notices the closed connection and rolls back.
    let started = Instant::now();
    while db
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' \
             AND pid <> pg_backend_pid()",
            &[],
        )
        .unwrap()
        .get::<_, i64>(0)
        > 0
    {
        assert!(started.elapsed() < Duration::from_secs(30));
        std::thread::sleep(Duration::from_millis(20));
    }
    let count: i64 = db
        .query_one(
            "SELECT count(*) FROM invoice_lines WHERE source_sha256 = $1",
            &[&sha256(&file)],
        )
        .unwrap()
        .get(0);
    assert_eq!(count, 0);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bulk_loads_each_file_once_by_content() {
    let Some(pg) = Postgres::start() else { return };
    let dir = temp_dir("bulk");
    let a = generated(&dir, 3_000, 1);
    let b = generated(&dir, 2_000, 2);
    let folder = dir.join("run");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::copy(&a, folder.join("a.csv")).unwrap();
    std::fs::copy(&b, folder.join("b.csv")).unwrap();
    // The same content under another name: already there, whichever
    // of the two commits first.
    std::fs::copy(&a, folder.join("a-copy.csv")).unwrap();
    let out = bin()
        .arg("bulk")
        .arg(&folder)
        .args(["--load", &pg.url(), "--table", "lines", "--json"])
        .output()
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&out.stderr)));
    let files = report["files"].as_array().unwrap();
    assert_eq!(files.len(), 3);
    let mut loads: BTreeMap<String, (u64, u64, u64)> = BTreeMap::new();
    for f in files {
        let name = Path::new(f["path"].as_str().unwrap())
            .file_name()
            .unwrap()
            .to_string_lossy()
            .to_string();
        let r = &f["report"];
        loads.insert(
            name,
            (
                r["rows"]["valid"].as_u64().unwrap(),
                r["load"]["inserted"].as_u64().unwrap(),
                r["load"]["already_loaded"].as_u64().unwrap(),
            ),
        );
    }
    let (va, ia, aa) = loads["a.csv"];
    let (vc, ic, ac) = loads["a-copy.csv"];
    let (vb, ib, ab) = loads["b.csv"];
    assert_eq!((ib, ab), (vb, 0));
    assert_eq!(va, vc);
    // One of the two copies inserted every row, the other none.
    assert_eq!((ia + ic, aa + ac), (va, va), "{loads:?}");
    assert!(ia == 0 || ic == 0, "{loads:?}");
    let human = bin()
        .arg("bulk")
        .arg(&folder)
        .args(["--load", &pg.url(), "--table", "lines"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&human.stdout);
    assert!(
        text.contains(&format!(
            "loaded into lines: 0 rows inserted, {} already there",
            2 * va + vb
        )),
        "{text}"
    );
    let mut db = pg.client();
    let count: i64 = db
        .query_one("SELECT count(*) FROM lines", &[])
        .unwrap()
        .get(0);
    assert_eq!(count as u64, va + vb);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn load_errors_are_clear_and_keep_passwords_out() {
    let dir = temp_dir("errors");
    let file = dir.join("in.csv");
    std::fs::write(
        &file,
        "invoice_id,invoice_date,customer_id,quantity,unit_price,currency\nA,2024-01-01,C,1,1,EUR\n",
    )
    .unwrap();
    // Nothing listens on this port.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("postgres://me:s3cret@127.0.0.1:{port}/ledger");
    let out = bin()
        .arg("process")
        .arg(&file)
        .args(["--load", &url])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("cannot load") && err.contains("cannot connect"),
        "{err}"
    );
    assert!(!err.contains("s3cret"), "{err}");
    for bad in ["x;drop table y", "a.b.c"] {
        let out = bin()
            .arg("process")
            .arg(&file)
            .args(["--load", &url, "--table", bad])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(err.contains("is not a table name"), "{err}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// API jobs with `"outputs": {"load": true}` load through the server's
/// `--load`, on the embedded store and through a Redis worker; the job's
/// report says, per file, what was inserted and what was already there;
/// a server without `--load` refuses such a job.
#[test]
fn api_jobs_load_through_the_servers_database() {
    let Some(pg) = Postgres::start() else { return };
    let Some(redis) = common::Redis::start() else {
        return;
    };
    let dir = temp_dir("api");
    let file = generated(&dir, 2_000, 5);
    let url = pg.url();
    let embedded = common::Server::fresh(&["--load", &url, "--table", "api_lines"]);
    let on_redis = common::Server::fresh(&[
        "--store",
        &redis.url(),
        "--store-prefix",
        "load",
        "--load",
        &url,
        "--table",
        "api_lines",
    ]);
    let request = |id: &str| ledgerline_api::BulkRequest {
        file_ids: vec![id.to_string()],
        use_optimized: true,
        settings: BTreeMap::new(),
        outputs: ledgerline_api::JobOutputs {
            load: true,
            ..Default::default()
        },
    };
    let mut loads = Vec::new();
    for server in [&embedded, &on_redis] {
        let client = server.client();
        let id = client.upload_file(&file).unwrap().id;
        let job = client.bulk_request(&request(&id)).unwrap();
        let last = client.watch(&job.job_id, |_| {}).unwrap();
        assert_eq!(last.state, ledgerline_api::JobState::Succeeded);
        let report = client.report_json(&job.job_id).unwrap();
        let r = &report["files"][0]["report"];
        loads.push((r["rows"]["valid"].as_u64().unwrap(), r["load"].clone()));
    }
    let valid = loads[0].0;
    assert_eq!(
        loads,
        [
            (
                valid,
                serde_json::json!({"table": "api_lines", "inserted": valid, "already_loaded": 0})
            ),
            (
                valid,
                serde_json::json!({"table": "api_lines", "inserted": 0, "already_loaded": valid})
            ),
        ]
    );
    let mut db = pg.client();
    let (_, report) = process_json(&[file.to_str().unwrap()]);
    assert_eq!(
        table_totals(&mut db, "api_lines", &sha256(&file)),
        report_totals(&report)
    );
    // Without --load: refused before anything runs.
    let plain = common::Server::fresh(&[]);
    let client = plain.client();
    let id = client.upload_file(&file).unwrap().id;
    let e = client.bulk_request(&request(&id)).unwrap_err();
    assert_eq!(e.status(), Some(422), "{e}");
    assert!(e.to_string().contains("--load"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The same content loaded again under settings that make more rows clean
/// (a default currency fills the empty ones): only the rows not yet there
/// are added — the staging path — and the rest are counted as already
/// loaded.
#[test]
fn a_second_load_adds_only_the_rows_not_yet_there() {
    let Some(pg) = Postgres::start() else { return };
    let dir = temp_dir("partial");
    let file = dir.join("in.csv");
    std::fs::write(
        &file,
        "invoice_id,invoice_date,customer_id,quantity,unit_price,currency\n\
         A-1,2024-01-01,C1,1,10,EUR\n\
         A-2,2024-01-02,C1,2,10,\n\
         A-3,2024-01-03,C1,3,10,USD\n\
         A-4,2024-01-04,C1,4,10,\n",
    )
    .unwrap();
    let f = file.to_str().unwrap();
    let (_, first) = process_json(&[f, "--load", &pg.url()]);
    assert_eq!(
        first["load"],
        serde_json::json!({"table": "invoice_lines", "inserted": 2, "already_loaded": 0})
    );
    let (_, second) = process_json(&[f, "--load", &pg.url(), "--default-currency", "EUR"]);
    assert_eq!(second["rows"]["valid"], 4);
    assert_eq!(
        second["load"],
        serde_json::json!({"table": "invoice_lines", "inserted": 2, "already_loaded": 2})
    );
    let mut db = pg.client();
    let rows: Vec<(i64, String)> = db
        .query(
            "SELECT source_row, currency FROM invoice_lines ORDER BY source_row",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        rows,
        [
            (2, "EUR".to_string()),
            (3, "EUR".to_string()),
            (4, "USD".to_string()),
            (5, "EUR".to_string())
        ]
    );
    let _ = std::fs::remove_dir_all(&dir);
}
