//! Clean rows loaded into PostgreSQL: `COPY … FROM STDIN (FORMAT binary)`
//! straight into the target when it holds no row of the file's content,
//! else into a temporary staging table, then `INSERT … ON CONFLICT DO
//! NOTHING` into the target; one transaction per file. A file's rows are all
//! loaded or none (a failed or killed run rolls back), and loading the same
//! file again adds nothing: rows are keyed by the file's SHA-256 and their
//! row number.
//!
//! The merge thread encodes rows into COPY's binary format (money as
//! `NUMERIC` with its exact digits, dates as `DATE`); a loader thread owns
//! the connection and streams the buffers out, so encoding and the network
//! overlap and memory stays bounded (a few buffers in flight).

use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::thread::JoinHandle;

use ledgerline_core::rows::{CleanRow, Exact, Loaded, RejectedRow, RowSink};
use sha2::{Digest, Sha256};

/// The table loaded into when none is named.
pub const DEFAULT_TABLE: &str = "invoice_lines";

/// What identifies a loaded row's source, before the clean-row columns.
const SOURCE_COLUMNS: [&str; 3] = ["source_sha256", "source_row", "source_name"];

/// The loaded columns, in COPY order: the source, then the clean rows'
/// columns but `row` (it is `source_row`); `loaded_at` takes its default.
fn columns() -> impl Iterator<Item = &'static str> {
    SOURCE_COLUMNS
        .into_iter()
        .chain(crate::CLEAN_COLUMNS[1..].iter().copied())
}

/// How many columns a COPY row has.
const COLUMN_COUNT: usize = SOURCE_COLUMNS.len() + crate::CLEAN_COLUMNS.len() - 1;

/// Bytes of COPY data handed to the loader at a time.
const BUFFER: usize = 256 * 1024;
/// Buffers in flight between the merge and the loader.
const IN_FLIGHT: usize = 4;

/// `[schema.]name`, each an SQL identifier of letters, digits, `_` and `$`
/// (not starting with a digit or `$`), at most 63 bytes; quoted when used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableName {
    schema: Option<String>,
    name: String,
}

impl TableName {
    /// Parses a table name; `None` when it is not one.
    pub fn parse(text: &str) -> Option<TableName> {
        fn ident(s: &str) -> Option<String> {
            let mut bytes = s.bytes();
            let first = bytes.next()?;
            let ok = (first.is_ascii_alphabetic() || first == b'_')
                && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'$')
                && s.len() <= 63;
            ok.then(|| s.to_string())
        }
        match text.split_once('.') {
            Some((schema, name)) => Some(TableName {
                schema: Some(ident(schema)?),
                name: ident(name)?,
            }),
            None => Some(TableName {
                schema: None,
                name: ident(text)?,
            }),
        }
    }

    /// As written in SQL: `"schema"."name"`.
    fn quoted(&self) -> String {
        match &self.schema {
            Some(schema) => format!("\"{schema}\".\"{}\"", self.name),
            None => format!("\"{}\"", self.name),
        }
    }
}

impl std::fmt::Display for TableName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.schema {
            Some(schema) => write!(f, "{schema}.{}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

/// A PostgreSQL connection URL with any password hidden, for messages.
fn shown(url: &str) -> String {
    match url.parse::<postgres::Config>() {
        Ok(config) => {
            let hosts: Vec<String> = config
                .get_hosts()
                .iter()
                .map(|h| match h {
                    postgres::config::Host::Tcp(name) => name.clone(),
                    postgres::config::Host::Unix(path) => path.display().to_string(),
                })
                .collect();
            format!(
                "PostgreSQL at {} (database {})",
                hosts.join(","),
                config.get_dbname().unwrap_or("default")
            )
        }
        Err(_) => "PostgreSQL".to_string(),
    }
}

fn pg_error(url: &str, what: &str, e: postgres::Error) -> io::Error {
    let detail = match e.as_db_error() {
        Some(db) => db.message().to_string(),
        None => e.to_string(),
    };
    io::Error::other(format!("{}: {what}: {detail}", shown(url)))
}

/// Where clean rows are loaded: a database and a table, created when
/// missing. One [`PgLoad`] per file, each its own connection and
/// transaction.
#[derive(Clone)]
pub struct PgTarget {
    url: String,
    table: TableName,
}

impl std::fmt::Debug for PgTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may hold a password.
        f.debug_struct("PgTarget")
            .field("at", &shown(&self.url))
            .field("table", &self.table.to_string())
            .finish()
    }
}

impl PgTarget {
    /// Connects to `url` and creates `table` ([`DEFAULT_TABLE`] when
    /// `None`) when it does not exist: the SPEC §2 fields with `NUMERIC`
    /// money and `DATE` dates, the source file's SHA-256, name and row, a
    /// `loaded_at` time, unique on (`source_sha256`, `source_row`).
    pub fn prepare(url: &str, table: Option<&str>) -> io::Result<PgTarget> {
        let name = table.unwrap_or(DEFAULT_TABLE);
        let table = TableName::parse(name).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{name:?} is not a table name ([schema.]name of letters, digits and _)"),
            )
        })?;
        let mut client = postgres::Client::connect(url, postgres::NoTls)
            .map_err(|e| pg_error(url, "cannot connect", e))?;
        let create = format!(
            "CREATE TABLE IF NOT EXISTS {t} (
                source_sha256 text NOT NULL,
                source_row bigint NOT NULL,
                source_name text NOT NULL,
                invoice_id text NOT NULL,
                invoice_date date NOT NULL,
                due_date date,
                customer_id text NOT NULL,
                customer_name text,
                sku text,
                description text,
                quantity numeric NOT NULL,
                unit_price numeric NOT NULL,
                tax_rate numeric NOT NULL,
                line_total numeric,
                currency text NOT NULL,
                net numeric NOT NULL,
                tax numeric NOT NULL,
                gross numeric NOT NULL,
                loaded_at timestamptz NOT NULL DEFAULT now(),
                UNIQUE (source_sha256, source_row)
            )",
            t = table.quoted()
        );
        // Two runs creating the table at once: one waits for the other.
        let mut tx = client
            .transaction()
            .map_err(|e| pg_error(url, "cannot begin", e))?;
        tx.execute("SELECT pg_advisory_xact_lock(4242424242)", &[])
            .and_then(|_| tx.batch_execute(&create))
            .map_err(|e| pg_error(url, &format!("cannot create table {table}"), e))?;
        tx.commit()
            .map_err(|e| pg_error(url, &format!("cannot create table {table}"), e))?;
        Ok(PgTarget {
            url: url.to_string(),
            table,
        })
    }

    /// The table loaded into.
    pub fn table(&self) -> &TableName {
        &self.table
    }

    /// Starts loading the file at `path` (named `name` in the run), keyed
    /// by its SHA-256 ([`sha256_file`]).
    pub fn begin_file(&self, path: &Path, name: &str) -> io::Result<PgLoad> {
        self.begin(&sha256_file(path)?, name)
    }

    /// Starts loading one file (its SHA-256 in hex, its name in the run):
    /// connects, begins the transaction and the COPY; errors are said now.
    pub fn begin(&self, sha256: &str, name: &str) -> io::Result<PgLoad> {
        let (tx, rx) = sync_channel::<Vec<u8>>(IN_FLIGHT);
        let (ready_tx, ready_rx) = sync_channel::<io::Result<()>>(1);
        let (url, table, sha) = (self.url.clone(), self.table.clone(), sha256.to_string());
        let loader = std::thread::Builder::new()
            .name("ledgerline-pg".into())
            .spawn(move || load(&url, &table, &sha, rx, ready_tx))?;
        match ready_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                let _ = loader.join();
                return Err(e);
            }
            Err(_) => {
                return Err(match loader.join() {
                    Ok(Err(e)) => e,
                    _ => io::Error::other("the PostgreSQL loader stopped"),
                })
            }
        }
        let mut buf = Vec::with_capacity(BUFFER + 4096);
        // COPY binary header: signature, flags, header extension length.
        buf.extend_from_slice(b"PGCOPY\n\xff\r\n\0");
        buf.extend_from_slice(&0i32.to_be_bytes());
        buf.extend_from_slice(&0i32.to_be_bytes());
        Ok(PgLoad {
            buf,
            sha256: sha256.to_string(),
            name: name.to_string(),
            tx: Some(tx),
            loader: Some(loader),
            failed: false,
        })
    }
}

/// The loader thread: one connection, one transaction, one COPY. Loads of
/// the same content wait for each other (an advisory lock on its SHA-256);
/// when the table holds no row of this content — the usual first load —
/// the rows are copied straight into it; otherwise into a temporary
/// staging table, and the target gets those not already there (`ON
/// CONFLICT DO NOTHING`). Either way the rows are committed only when the
/// sink finished (an empty buffer says so); anything else rolls back.
fn load(
    url: &str,
    table: &TableName,
    sha256: &str,
    rx: Receiver<Vec<u8>>,
    ready: SyncSender<io::Result<()>>,
) -> io::Result<Loaded> {
    let started = (|| -> io::Result<postgres::Client> {
        let mut client = postgres::Client::connect(url, postgres::NoTls)
            .map_err(|e| pg_error(url, "cannot connect", e))?;
        client
            .batch_execute("BEGIN")
            .map_err(|e| pg_error(url, "cannot begin", e))?;
        Ok(client)
    })();
    // Ready once connected: waiting for another load of the same content
    // (below) holds up only this file's rows, never the caller.
    let mut client = match started {
        Ok(client) => {
            let _ = ready.send(Ok(()));
            client
        }
        Err(e) => {
            let _ = ready.send(Err(io::Error::new(e.kind(), e.to_string())));
            return Err(e);
        }
    };
    let fresh = (|| {
        client.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
            &[&sha256],
        )?;
        let there: bool = client
            .query_one(
                &format!(
                    "SELECT EXISTS (SELECT 1 FROM {} WHERE source_sha256 = $1)",
                    table.quoted()
                ),
                &[&sha256],
            )?
            .get(0);
        if there {
            client.batch_execute(&format!(
                "CREATE TEMP TABLE ledgerline_stage \
                 (LIKE {} INCLUDING DEFAULTS) ON COMMIT DROP",
                table.quoted()
            ))?;
        }
        Ok(!there)
    })()
    .map_err(|e| pg_error(url, &format!("cannot load into {table}"), e))?;
    let columns = columns().collect::<Vec<_>>().join(", ");
    let into = if fresh {
        table.quoted()
    } else {
        "ledgerline_stage".to_string()
    };
    let copied = {
        let mut writer = client
            .copy_in(&format!(
                "COPY {into} ({columns}) FROM STDIN (FORMAT binary)"
            ))
            .map_err(|e| pg_error(url, "cannot start COPY", e))?;
        let mut complete = false;
        for bytes in rx {
            if bytes.is_empty() {
                complete = true;
                break;
            }
            writer.write_all(&bytes)?;
        }
        if !complete {
            // Dropping the writer unfinished aborts the COPY; the
            // transaction is never committed.
            return Err(io::Error::other("the load was abandoned"));
        }
        writer
            .finish()
            .map_err(|e| pg_error(url, &format!("COPY into {table} failed"), e))?
    };
    let inserted = if fresh {
        copied
    } else {
        client
            .execute(
                &format!(
                    "INSERT INTO {} ({columns}) SELECT {columns} FROM ledgerline_stage \
                     ON CONFLICT (source_sha256, source_row) DO NOTHING",
                    table.quoted()
                ),
                &[],
            )
            .map_err(|e| pg_error(url, &format!("cannot insert into {table}"), e))?
    };
    client
        .batch_execute("COMMIT")
        .map_err(|e| pg_error(url, "cannot commit", e))?;
    Ok(Loaded {
        table: table.to_string(),
        inserted,
        already_loaded: copied.saturating_sub(inserted),
    })
}

/// One file's load, fed as a [`RowSink`] (only clean rows are loaded).
/// [`PgLoad::finish`] commits; dropped unfinished, it rolls back.
pub struct PgLoad {
    buf: Vec<u8>,
    sha256: String,
    name: String,
    tx: Option<SyncSender<Vec<u8>>>,
    loader: Option<JoinHandle<io::Result<Loaded>>>,
    /// The loader stopped early; its own error says why.
    failed: bool,
}

impl PgLoad {
    fn send(&mut self) {
        if self.failed {
            self.buf.clear();
            return;
        }
        let full = std::mem::replace(&mut self.buf, Vec::with_capacity(BUFFER + 4096));
        if let Some(tx) = &self.tx {
            if tx.send(full).is_err() {
                self.failed = true;
            }
        }
    }

    /// Ends the COPY and commits the file's rows: what was inserted and
    /// what an earlier load already held.
    pub fn finish(mut self) -> io::Result<Loaded> {
        self.buf.extend_from_slice(&(-1i16).to_be_bytes());
        self.send();
        if let Some(tx) = self.tx.take() {
            // An empty buffer: the sink finished, commit.
            let _ = tx.send(Vec::new());
        }
        match self.loader.take().map(JoinHandle::join) {
            Some(Ok(result)) => result,
            _ => Err(io::Error::other("the PostgreSQL loader stopped")),
        }
    }
}

impl Drop for PgLoad {
    fn drop(&mut self) {
        // Unfinished: close the channel without the final empty buffer,
        // so the loader rolls back, and wait for it.
        self.tx.take();
        if let Some(loader) = self.loader.take() {
            let _ = loader.join();
        }
    }
}

fn put_null(buf: &mut Vec<u8>) {
    buf.extend_from_slice(&(-1i32).to_be_bytes());
}

fn put_text(buf: &mut Vec<u8>, text: &str) {
    buf.extend_from_slice(&(text.len() as i32).to_be_bytes());
    buf.extend_from_slice(text.as_bytes());
}

fn put_opt_text(buf: &mut Vec<u8>, text: Option<&str>) {
    match text {
        Some(t) => put_text(buf, t),
        None => put_null(buf),
    }
}

/// `YYYY-MM-DD` as PostgreSQL's `DATE`: days since 2000-01-01.
fn put_date(buf: &mut Vec<u8>, date: &str) -> io::Result<()> {
    const PG_EPOCH: i32 = 10_957; // 2000-01-01 in days since 1970-01-01
    let days = crate::epoch_days(date)? - PG_EPOCH;
    buf.extend_from_slice(&4i32.to_be_bytes());
    buf.extend_from_slice(&days.to_be_bytes());
    Ok(())
}

/// An exact decimal as PostgreSQL's binary `NUMERIC`: digit count,
/// weight (of the first base-10,000 digit), sign, display scale, then the
/// base-10,000 digits, leading and trailing zero digits left out.
fn numeric(value: Exact) -> Vec<u8> {
    let scale = value.scale as usize;
    let digits = value.mantissa.unsigned_abs().to_string();
    let (int, frac) = if digits.len() > scale {
        digits.split_at(digits.len() - scale)
    } else {
        ("", digits.as_str())
    };
    // Integer part padded on the left, fraction on the right (the fraction
    // first to its full scale), each to whole groups of four.
    let frac = format!("{frac:0>scale$}");
    let int_groups = int.len().div_ceil(4);
    let int = format!("{int:0>width$}", width = int_groups * 4);
    let frac_groups = frac.len().div_ceil(4);
    let frac = format!("{frac:0<width$}", width = frac_groups * 4);
    let mut groups: Vec<i16> = int
        .as_bytes()
        .chunks(4)
        .chain(frac.as_bytes().chunks(4))
        .map(|c| c.iter().fold(0i16, |n, d| n * 10 + i16::from(d - b'0')))
        .collect();
    let mut weight = int_groups as i16 - 1;
    let lead = groups.iter().take_while(|&&g| g == 0).count();
    groups.drain(..lead);
    weight -= lead as i16;
    while groups.last() == Some(&0) {
        groups.pop();
    }
    if groups.is_empty() {
        weight = 0;
    }
    let sign: u16 = if value.mantissa < 0 && !groups.is_empty() {
        0x4000
    } else {
        0
    };
    let mut out = Vec::with_capacity(8 + 2 * groups.len());
    out.extend_from_slice(&(groups.len() as i16).to_be_bytes());
    out.extend_from_slice(&weight.to_be_bytes());
    out.extend_from_slice(&sign.to_be_bytes());
    out.extend_from_slice(&(value.scale as u16).to_be_bytes());
    for g in groups {
        out.extend_from_slice(&g.to_be_bytes());
    }
    out
}

fn put_numeric(buf: &mut Vec<u8>, value: Exact) {
    let bytes = numeric(value);
    buf.extend_from_slice(&(bytes.len() as i32).to_be_bytes());
    buf.extend_from_slice(&bytes);
}

fn put_opt_date(buf: &mut Vec<u8>, date: Option<&str>) -> io::Result<()> {
    match date {
        Some(d) => put_date(buf, d),
        None => {
            put_null(buf);
            Ok(())
        }
    }
}

impl RowSink for PgLoad {
    fn header(&mut self, _fields: &[String]) {}

    fn rejected(&mut self, _row: &RejectedRow) {}

    fn clean(&mut self, r: &CleanRow) {
        if self.failed {
            return;
        }
        let buf = &mut self.buf;
        let start = buf.len();
        buf.extend_from_slice(&(COLUMN_COUNT as i16).to_be_bytes());
        put_text(buf, &self.sha256);
        buf.extend_from_slice(&8i32.to_be_bytes());
        buf.extend_from_slice(&(r.row as i64).to_be_bytes());
        put_text(buf, &self.name);
        put_text(buf, &r.invoice_id);
        let dates = put_date(buf, &r.invoice_date);
        let due = put_opt_date(buf, r.due_date.as_deref());
        if dates.and(due).is_err() {
            // The merge gives normalized dates; a row that is not is not
            // loaded rather than loaded wrongly, and fails the load.
            buf.truncate(start);
            self.failed = true;
            self.tx.take();
            return;
        }
        put_text(buf, &r.customer_id);
        put_opt_text(buf, r.customer_name.as_deref());
        put_opt_text(buf, r.sku.as_deref());
        put_opt_text(buf, r.description.as_deref());
        put_numeric(buf, r.quantity);
        put_numeric(buf, r.unit_price);
        put_numeric(buf, r.tax_rate);
        match r.line_total {
            Some(t) => put_numeric(buf, t),
            None => put_null(buf),
        }
        put_text(buf, r.currency);
        put_numeric(buf, r.net);
        put_numeric(buf, r.tax);
        put_numeric(buf, r.gross);
        if self.buf.len() >= BUFFER {
            self.send();
        }
    }
}

/// The SHA-256 of a file's bytes, in lower-case hex (the key of its rows).
pub fn sha256_file(path: &Path) -> io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex(&hasher.finalize()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(mantissa: i128, scale: u32) -> (i16, i16, u16, u16, Vec<i16>) {
        let b = numeric(Exact { mantissa, scale });
        let word = |i: usize| [b[i], b[i + 1]];
        let digits = (8..b.len())
            .step_by(2)
            .map(|i| i16::from_be_bytes(word(i)))
            .collect();
        (
            i16::from_be_bytes(word(0)),
            i16::from_be_bytes(word(2)),
            u16::from_be_bytes(word(4)),
            u16::from_be_bytes(word(6)),
            digits,
        )
    }

    #[test]
    fn numeric_digits_weight_sign_scale() {
        // 12.50 = 12 × 10000^0 + 5000 × 10000^-1
        assert_eq!(n(1250, 2), (2, 0, 0, 2, vec![12, 5000]));
        // -0.005 = -(50 × 10000^-1)
        assert_eq!(n(-5, 3), (1, -1, 0x4000, 3, vec![50]));
        // 0.00001 = 1000 × 10000^-2
        assert_eq!(n(1, 5), (1, -2, 0, 5, vec![1000]));
        // 123456789 = 1 × 10000^2 + 2345 × 10000 + 6789
        assert_eq!(n(123_456_789, 0), (3, 2, 0, 0, vec![1, 2345, 6789]));
        // 10000.0000: trailing zero groups left out
        assert_eq!(n(100_000_000, 4), (1, 1, 0, 4, vec![1]));
        // zero keeps its scale, never negative
        assert_eq!(n(0, 2), (0, 0, 0, 2, vec![]));
        assert_eq!(n(-0, 0), (0, 0, 0, 0, vec![]));
    }

    #[test]
    fn the_copy_columns_are_the_source_then_the_clean_rows() {
        let all: Vec<&str> = columns().collect();
        assert_eq!(all.len(), COLUMN_COUNT);
        assert_eq!(
            all.join(","),
            "source_sha256,source_row,source_name,invoice_id,invoice_date,due_date,\
             customer_id,customer_name,sku,description,quantity,unit_price,tax_rate,\
             line_total,currency,net,tax,gross"
        );
    }

    #[test]
    fn table_names_are_identifiers_only() {
        assert_eq!(
            TableName::parse("ledger.lines").unwrap().quoted(),
            "\"ledger\".\"lines\""
        );
        assert_eq!(TableName::parse("_x$1").unwrap().to_string(), "_x$1");
        for bad in [
            "",
            "1x",
            "a.b.c",
            "x;drop table y",
            "a\"b",
            "$x",
            "a b",
            "é",
        ] {
            assert!(TableName::parse(bad).is_none(), "{bad:?}");
        }
        assert!(TableName::parse(&"x".repeat(64)).is_none());
    }

    #[test]
    fn passwords_stay_out_of_messages() {
        let s = shown("postgres://me:secret@db.example:5433/ledger");
        assert!(!s.contains("secret"), "{s}");
        assert!(s.contains("db.example") && s.contains("ledger"), "{s}");
    }

    #[test]
    fn sha256_of_a_known_file() {
        let path = std::env::temp_dir().join(format!("ledgerline-sha-{}", uuid::Uuid::new_v4()));
        std::fs::write(&path, b"abc").unwrap();
        // FIPS 180-2's example.
        assert_eq!(
            sha256_file(&path).unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        std::fs::remove_file(&path).unwrap();
    }
}
