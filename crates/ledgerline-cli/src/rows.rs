//! `ledgerline rows`: every record as read, header and blank rows included,
//! one JSON array of strings per line (SPEC §9).

use std::borrow::Cow;
use std::io::{BufWriter, Write};
use std::path::Path;

use ledgerline_core::{FileError, RecordBatch, RecordStatus, Settings};

/// Prints the records of `path`; returns the exit status.
pub fn run(path: &Path, configure: impl FnOnce(&mut Settings) -> Result<(), FileError>) -> i32 {
    let stdout = std::io::stdout();
    let mut out = BufWriter::with_capacity(1 << 16, stdout.lock());
    match print_rows(path, configure, &mut out) {
        Ok(()) => {
            let _ = out.flush();
            0
        }
        Err(e) => {
            let _ = out.flush();
            let _ = writeln!(out, "{}", e.to_report_json());
            let _ = out.flush();
            2
        }
    }
}

fn print_rows(
    path: &Path,
    configure: impl FnOnce(&mut Settings) -> Result<(), FileError>,
    out: &mut impl Write,
) -> Result<(), FileError> {
    let mut settings = Settings::default();
    configure(&mut settings)?;
    let mut reader = ledgerline_read::open_path_padded(path, &settings)?;
    let mut batch = RecordBatch::new();
    let broken_pipe = |e: std::io::Error| {
        FileError::new(ledgerline_core::FileErrorCode::Io, format!("stdout: {e}"))
    };
    while reader.read_batch(&mut batch, 4096)? > 0 {
        let mut fields: Vec<Cow<'_, str>> = Vec::new();
        for r in batch.iter() {
            fields.clear();
            fields.extend(r.fields().map(String::from_utf8_lossy));
            serde_json::to_writer(&mut *out, &fields)
                .map_err(|e| broken_pipe(std::io::Error::other(e)))?;
            out.write_all(b"\n").map_err(broken_pipe)?;
            if r.status() == RecordStatus::UnterminatedQuote {
                return Ok(());
            }
        }
    }
    Ok(())
}
