//! Blocks: parallel CSV parsing of an uncompressed UTF-8 file.
//!
//! The reader thread only reads raw blocks and cuts each at a record
//! boundary found by a quote-aware scan: the last `\n` before which the
//! number of `"` since the previous boundary is even (a newline inside a
//! quoted field is not a boundary). Workers parse and validate the blocks in
//! parallel; row numbers are relative to the block and are shifted by the
//! lines of the blocks before it when results are merged in order.
//!
//! Quote parity is exact for RFC 4180 files, but a literal `"` inside an
//! unquoted field (which SPEC §1 allows) fools it. Every cut is therefore
//! verified: a block's parse must not end inside a quoted field. The first
//! block starts at a true record boundary, so if every block ends cleanly,
//! every cut was a true boundary. If one does not, the run is abandoned and
//! the file is processed again by [`crate::streamed`] — slower, never wrong.

use std::collections::VecDeque;
use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use ledgerline_core::{
    FileError, FileErrorCode, RecordBatch, RecordStatus, Report, RunContext, Source,
};
use ledgerline_detect::{Detection, Format};
use ledgerline_governor::Governor;
use ledgerline_invoice::{read_prelude, Rules, Validator};
use ledgerline_read::CsvRangeParser;
use ledgerline_scheduler::{run_ordered, Config, ScheduleError};
use ledgerline_session::{self as session, check_cancel, row_range};

use crate::{report_progress, schedule_error, OptimizedProcessor, SpareResults};

/// Smallest block handed to a worker.
const MIN_BLOCK: usize = 64 * 1024;
/// A carry longer than this without a boundary gives up blocks (e.g. a
/// file with lone `\r` line breaks, or one enormous quoted field); less
/// when `max_record_bytes` is smaller: a carry longer than one record can
/// be holds a record the streaming reader skips without holding it.
const MAX_CARRY: usize = 64 * 1024 * 1024;
/// Largest block asked for, whatever the governor's plan.
pub(crate) const MAX_BLOCK: usize = 64 * 1024 * 1024;

/// The delimiter and byte order mark length of a plain UTF-8 CSV file,
/// or `None` when the file cannot run in blocks (gzip, Excel, other
/// encodings).
pub(crate) fn plain_csv(detection: &Detection) -> Option<(u8, usize)> {
    match (&detection.format, detection.is_gzip(), &detection.text) {
        (Format::Csv, false, Some(text)) if text.encoding == encoding_rs::UTF_8 => {
            Some((text.delimiter, text.bom_len))
        }
        _ => None,
    }
}

/// Reads a file in blocks that end at record boundaries.
pub(crate) struct BlockCutter {
    file: File,
    name: String,
    carry: Vec<u8>,
    eof: bool,
    /// Bytes read so far.
    pub(crate) bytes: u64,
    /// Wanted block size.
    pub(crate) target: usize,
    /// A carry without a boundary longer than this falls back to streaming.
    max_carry: usize,
    /// Buffers of blocks done with, to read the next blocks into.
    spare: (Sender<Vec<u8>>, Receiver<Vec<u8>>),
}

/// A block of whole records.
pub(crate) struct Block {
    pub(crate) bytes: Vec<u8>,
    pub(crate) last: bool,
    /// Where the bytes' buffer goes when the block is dropped.
    home: Option<Sender<Vec<u8>>>,
}

impl Drop for Block {
    fn drop(&mut self) {
        if let Some(home) = &self.home {
            // A full pool (or a finished run) simply frees the buffer.
            let _ = home.try_send(std::mem::take(&mut self.bytes));
        }
    }
}

/// Block buffers kept for reuse; past these, a finished block's buffer is
/// freed.
const SPARE_BLOCKS: usize = 16;

impl BlockCutter {
    pub(crate) fn open(
        path: &Path,
        skip: usize,
        target: usize,
        max_record_bytes: usize,
    ) -> Result<BlockCutter, FileError> {
        let name = path.display().to_string();
        let mut file = File::open(path).map_err(|e| FileError::io(&name, e))?;
        let mut bom = vec![0u8; skip];
        file.read_exact(&mut bom)
            .map_err(|e| FileError::io(&name, e))?;
        Ok(BlockCutter {
            file,
            name,
            carry: Vec::new(),
            eof: false,
            bytes: skip as u64,
            target: target.max(MIN_BLOCK),
            max_carry: max_record_bytes.saturating_add(MIN_BLOCK).min(MAX_CARRY),
            spare: crossbeam_channel::bounded(SPARE_BLOCKS),
        })
    }

    /// The next block, `None` at the end; [`Fallback`] when no boundary
    /// turns up in reasonable memory.
    pub(crate) fn next_block(&mut self) -> Result<Option<Block>, BlockError> {
        // A warm buffer when one is back: no fresh pages to fault in.
        let mut buf = self.spare.1.try_recv().unwrap_or_default();
        buf.clear();
        buf.append(&mut self.carry);
        let mut quotes = count_quotes(&buf);
        loop {
            if !self.eof {
                let start = buf.len();
                self.fill(&mut buf)?;
                quotes += count_quotes(&buf[start..]);
            }
            if self.eof {
                return Ok((!buf.is_empty()).then_some(Block {
                    bytes: buf,
                    last: true,
                    home: Some(self.spare.0.clone()),
                }));
            }
            if let Some(cut) = last_boundary(&buf, quotes) {
                self.carry.extend_from_slice(&buf[cut..]);
                buf.truncate(cut);
                return Ok(Some(Block {
                    bytes: buf,
                    last: false,
                    home: Some(self.spare.0.clone()),
                }));
            }
            if buf.len() > self.max_carry {
                return Err(BlockError::Fallback);
            }
        }
    }

    /// Appends up to `target` bytes of the file to `buf`; sets `eof` when
    /// the file ends.
    fn fill(&mut self, buf: &mut Vec<u8>) -> Result<(), BlockError> {
        // Read straight into the buffer's spare room (no zeroing first);
        // fewer bytes than asked for means the file ended.
        buf.reserve(self.target);
        let filled = (&mut self.file)
            .take(self.target as u64)
            .read_to_end(buf)
            .map_err(|e| {
                BlockError::File(FileError::new(
                    FileErrorCode::Io,
                    format!("{}: {e}", self.name),
                ))
            })?;
        self.eof = filled < self.target;
        self.bytes += filled as u64;
        Ok(())
    }
}

/// Why the blocks path stopped.
#[derive(Debug)]
pub(crate) enum BlockError {
    /// A cut was not a record boundary, or none could be found: run the
    /// file again streamed.
    Fallback,
    /// A real file error.
    File(FileError),
}

impl From<FileError> for BlockError {
    fn from(e: FileError) -> BlockError {
        BlockError::File(e)
    }
}

fn count_quotes(bytes: &[u8]) -> usize {
    memchr::memchr_iter(b'"', bytes).count()
}

/// The end (one past the `\n`) of the last line break in `buf` outside
/// quotes, given the number of quotes in all of `buf`.
fn last_boundary(buf: &[u8], quotes: usize) -> Option<usize> {
    let mut after = 0usize; // quotes after the candidate newline
    let mut end = buf.len();
    while let Some(nl) = memchr::memrchr(b'\n', &buf[..end]) {
        after += count_quotes(&buf[nl + 1..end]);
        if (quotes - after).is_multiple_of(2) {
            return Some(nl + 1);
        }
        end = nl;
    }
    None
}

/// Parses a whole block into `batch` (cleared first), rows numbered from
/// `first_line`, records over `max_record_bytes` marked too long as the
/// streaming reader marks them; returns the block's line breaks. A block
/// that is not the last and ends inside a quoted field was cut in the
/// wrong place.
pub(crate) fn parse_block(
    block: &Block,
    delimiter: u8,
    max_record_bytes: usize,
    first_line: u64,
    batch: &mut RecordBatch,
) -> Result<u64, BlockError> {
    batch.clear();
    let mut parser =
        CsvRangeParser::new(delimiter, first_line).with_max_record_bytes(max_record_bytes);
    parser.parse(&block.bytes, true, batch, usize::MAX)?;
    let open_quote = batch
        .len()
        .checked_sub(1)
        .is_some_and(|i| batch.record(i).status() == RecordStatus::UnterminatedQuote);
    if open_quote && !block.last {
        return Err(BlockError::Fallback);
    }
    Ok(parser.line() - first_line)
}

/// A unit of block work: records already parsed while reading the
/// prelude (rows final), or a raw block (rows relative to the block).
pub(crate) enum Work {
    Parsed(RecordBatch),
    Raw(Block),
}

/// A worker's output for one [`Work`] item.
pub(crate) enum Done {
    Parsed(ledgerline_invoice::ChunkResult),
    Raw(ledgerline_invoice::ChunkResult, u64),
    /// Validation of a raw block panicked: its first and last rows
    /// (relative to the block) and the panic's message, named in the merge
    /// once the block's place in the file is known.
    Panicked {
        first: u64,
        last: u64,
        message: String,
    },
    Failed(BlockError),
}

impl OptimizedProcessor {
    /// Runs a plain UTF-8 CSV file in blocks (see the module documentation);
    /// [`BlockError::Fallback`] when a cut proves wrong.
    pub(crate) fn blocks(
        &self,
        rules: Rules,
        path: &Path,
        delimiter: u8,
        bom: usize,
        run: &RunContext,
        started: Instant,
    ) -> Result<Report, BlockError> {
        let name = path.display().to_string();
        let governor = Governor::with_limits(&self.settings, run.limits);
        let monitor = governor.monitor(Duration::from_millis(10));
        let max_record = self.settings.max_record_bytes;
        let mut cutter = BlockCutter::open(path, bom, 1 << 20, max_record)?;
        if let Some(b) = self.block_bytes {
            // Below the usual minimum block: the knob is for tests.
            cutter.target = b;
        }

        // The prelude, parsed block by block on this thread.
        let mut next_line = 1u64;
        let mut fallback = false;
        let prelude = read_prelude(
            &rules,
            &name,
            true,
            false,
            self.settings.chunk_size,
            |batch, _max| {
                check_cancel(&name, run, 0)?;
                let block = match cutter.next_block() {
                    Ok(Some(b)) => b,
                    Ok(None) => {
                        batch.clear();
                        return Ok(0);
                    }
                    Err(BlockError::File(e)) => return Err(e),
                    Err(BlockError::Fallback) => {
                        fallback = true;
                        return Err(FileError::new(FileErrorCode::Internal, "fallback"));
                    }
                };
                match parse_block(&block, delimiter, max_record, next_line, batch) {
                    Ok(lines) => {
                        next_line += lines;
                        Ok(batch.len())
                    }
                    Err(BlockError::File(e)) => Err(e),
                    Err(BlockError::Fallback) => {
                        fallback = true;
                        Err(FileError::new(FileErrorCode::Internal, "fallback"))
                    }
                }
            },
        );
        let mut prelude = match prelude {
            Ok(p) => p,
            Err(_) if fallback => return Err(BlockError::Fallback),
            Err(e) => return Err(BlockError::File(e)),
        };
        let prelude_seconds = started.elapsed().as_secs_f64();
        let rows_read: usize = prelude.pending.iter().map(RecordBatch::len).sum::<usize>()
            + usize::try_from(prelude.blank_rows).unwrap_or(usize::MAX)
            + 1;
        let bytes_per_row = cutter.bytes as f64 / rows_read as f64;
        let plan = governor.plan(bytes_per_row);
        cutter.target = self.block_bytes.unwrap_or_else(|| {
            ((plan.chunk_rows as f64 * bytes_per_row) as usize).clamp(1, MAX_BLOCK)
        });

        // A block's batch is sized once from its bytes (records of about
        // `bytes_per_row`, each field a `u32` end) rather than grown by
        // doubling: less allocation churn, and no batch twice too big.
        let columns = prelude.columns.header_len().max(1);
        let batch_for = |bytes: usize| {
            let records = (bytes as f64 / bytes_per_row.max(1.0) * 1.1) as usize + 1;
            // Every field has at least its separator byte: never more ends
            // than bytes, however wide the header.
            let fields = columns.min(bytes.saturating_add(64) / records + 1);
            RecordBatch::with_capacity(records, fields, bytes.saturating_add(64))
        };
        // Batches come back once their block is validated (see `streamed`).
        let spare_batches = crossbeam_channel::bounded::<RecordBatch>(plan.in_flight + 1);
        let validator = Validator::new(&rules, &prelude.columns, prelude.date_order, false, true)
            .with_outputs(run.rows.is_some());
        let mut merger = ledgerline_session::merger_for(&rules, &prelude, run);
        if let Ok(meta) = std::fs::metadata(path) {
            merger.expect_rows((meta.len() as f64 / bytes_per_row.max(1.0)) as u64);
        }
        let mut pending: VecDeque<RecordBatch> = std::mem::take(&mut prelude.pending).into();
        let at_end = prelude.at_end;
        let mut line_offset = next_line - 1;
        let mut chunks = 0u64;
        let config = Config {
            workers: plan.workers,
            in_flight: plan.in_flight,
            pipelined: true,
        };
        let cutter_ref = &mut cutter;
        let spare = SpareResults::new(plan.in_flight);
        let validate = |batch: &RecordBatch| spare.validate(&validator, run, batch);
        let bytes_read = AtomicU64::new(0);
        let governor_ref = &governor;
        let result = run_ordered(
            &config,
            &run.cancel,
            || -> Result<Option<Work>, BlockError> {
                if let Some(b) = pending.pop_front() {
                    return Ok(Some(Work::Parsed(b)));
                }
                if at_end {
                    return Ok(None);
                }
                governor_ref.wait_if_throttled(Duration::from_millis(50));
                let block = cutter_ref.next_block()?;
                bytes_read.store(cutter_ref.bytes, Ordering::Relaxed);
                Ok(block.map(Work::Raw))
            },
            |work: &Work| match work {
                Work::Parsed(batch) => Done::Parsed(validate(batch)),
                Work::Raw(block) => {
                    // A batch a finished block left (cleared by the parse),
                    // else one sized for this block.
                    let mut batch = spare_batches
                        .1
                        .try_recv()
                        .unwrap_or_else(|_| batch_for(block.bytes.len()));
                    let done = match parse_block(block, delimiter, max_record, 1, &mut batch) {
                        Ok(lines) => {
                            // Caught here rather than by the scheduler, so the
                            // merge can name the rows once it knows where the
                            // block sits in the file.
                            let validated =
                                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                                    validate(&batch)
                                }));
                            match validated {
                                Ok(result) => Done::Raw(result, lines),
                                Err(payload) => Done::Panicked {
                                    first: batch.iter().next().map_or(1, |r| r.row()),
                                    last: batch
                                        .len()
                                        .checked_sub(1)
                                        .map_or(1, |i| batch.record(i).row()),
                                    message: session::panic_message(&*payload),
                                },
                            }
                        }
                        Err(e) => Done::Failed(e),
                    };
                    // A full pool simply frees the batch.
                    let _ = spare_batches.0.try_send(batch);
                    done
                }
            },
            |work: &Work| match work {
                Work::Parsed(batch) => row_range(batch),
                Work::Raw(block) => format!(
                    "a block of {} bytes (rows not yet numbered)",
                    block.bytes.len()
                ),
            },
            |done| {
                match done {
                    Done::Parsed(result) => spare.merge(&mut merger, result),
                    Done::Raw(mut result, lines) => {
                        result.shift_rows(line_offset);
                        line_offset += lines;
                        spare.merge(&mut merger, result);
                    }
                    Done::Panicked {
                        first,
                        last,
                        message,
                    } => {
                        let label = format!(
                            "the chunk of rows {}–{}",
                            first + line_offset,
                            last + line_offset
                        );
                        return Err(BlockError::File(session::chunk_panicked(
                            &name, &label, &message,
                        )));
                    }
                    Done::Failed(e) => return Err(e),
                }
                chunks += 1;
                report_progress(run, &bytes_read, &merger);
                Ok(())
            },
        );
        drop(monitor);
        result.map_err(|e| match e {
            ScheduleError::Failed(e) => e,
            other => BlockError::File(schedule_error(&name, other, chunks)),
        })?;
        let source = Source {
            format: "csv".to_string(),
            compression: None,
            sheet: None,
            encoding: Some("utf-8".to_string()),
            delimiter: Some((delimiter as char).to_string()),
            date_order: prelude.date_order.as_str().to_string(),
        };
        let counts = merger.counts();
        let mut metrics = session::metrics(
            "optimized",
            Some(self.settings.optimization_level.clamp(2, 3)),
            plan.workers,
            plan.chunk_rows,
            chunks,
            cutter.bytes,
            counts.total + counts.blank,
            started,
        );
        metrics.peak_memory_bytes = Some(governor.peak());
        metrics.stages.insert("prelude".into(), prelude_seconds);
        metrics.notes = governor.decisions();
        if let Some(sink) = &run.invoices {
            sink(&mut merger.invoice_ids());
        }
        Ok(merger.finish(source, prelude.warnings.clone(), metrics))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boundaries_respect_quotes() {
        let buf = b"a,b\n\"x\ny\",z\nc,d";
        // 2 quotes in all; the last newline (after `z`) has both before it.
        assert_eq!(last_boundary(buf, 2), Some(12));
        // Cut inside the quoted field: the only newline outside quotes is the first.
        let buf = b"a,b\n\"x\ny";
        assert_eq!(last_boundary(buf, 1), Some(4));
        assert_eq!(last_boundary(b"\"a\nb", 1), None);
    }
}
