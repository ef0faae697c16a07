//! The byte stream under the CSV reader: gzip, counting, byte order mark
//! and transcoding, with read failures mapped to file errors.

use std::fmt;
use std::io::{self, Read};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use flate2::read::MultiGzDecoder;
use ledgerline_core::{FileError, FileErrorCode};

use crate::decode::DecodeReader;

/// Marks an I/O error that means the data is corrupt (a broken gzip stream),
/// not that the operating system failed to read it.
#[derive(Debug)]
struct Corrupt(String);

impl fmt::Display for Corrupt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "corrupt gzip data: {}", self.0)
    }
}

impl std::error::Error for Corrupt {}

/// Decompresses every member of a gzip stream, tagging decoding failures
/// as [`Corrupt`].
struct Gunzip<R: Read>(MultiGzDecoder<R>);

impl<R: Read> Read for Gunzip<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf).map_err(|e| {
            if is_corrupt(&e) {
                // Already tagged by an inner layer.
                return e;
            }
            match e.kind() {
                // flate2 reports a bad header or deflate data as InvalidInput
                // or InvalidData and a truncated stream as UnexpectedEof;
                // failures of the file underneath keep their own kinds.
                io::ErrorKind::InvalidData
                | io::ErrorKind::InvalidInput
                | io::ErrorKind::UnexpectedEof => {
                    io::Error::new(io::ErrorKind::InvalidData, Corrupt(e.to_string()))
                }
                _ => e,
            }
        })
    }
}

fn is_corrupt(e: &io::Error) -> bool {
    e.get_ref().is_some_and(|inner| inner.is::<Corrupt>())
}

/// The content of `raw` inside `layers` nested gzip streams (SPEC §10),
/// every layer read to the end of all its members; `raw` itself when
/// `layers` is 0. Decoding failures of any layer are tagged [`Corrupt`].
pub(crate) fn gunzip_layers(raw: Box<dyn Read + Send>, layers: u8) -> Box<dyn Read + Send> {
    (0..layers).fold(raw, |inner, _| Box::new(Gunzip(MultiGzDecoder::new(inner))))
}

/// Counts the bytes read through it into a shared counter.
struct Counted<R> {
    inner: R,
    count: Arc<AtomicU64>,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// The file error for a failure to read `name`: `unreadable` when the data
/// is corrupt, `io` otherwise.
pub(crate) fn read_error(name: &str, err: &io::Error) -> FileError {
    let corrupt = err
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<Corrupt>());
    match corrupt {
        Some(c) => FileError::new(FileErrorCode::Unreadable, format!("{name}: {c}")),
        None => FileError::io(name, io::Error::new(err.kind(), err.to_string())),
    }
}

/// Builds the UTF-8 stream a CSV parser reads from the raw bytes of a file:
/// `gzip_layers` gzip layers opened, the first `bom_len` bytes skipped,
/// transcoded unless `encoding` is UTF-8. Returns the stream and the counter
/// of decompressed bytes read so far.
pub(crate) fn text_stream(
    name: &str,
    raw: Box<dyn Read + Send>,
    gzip_layers: u8,
    bom_len: usize,
    encoding: &'static encoding_rs::Encoding,
) -> Result<(Box<dyn Read + Send>, Arc<AtomicU64>), FileError> {
    let count = Arc::new(AtomicU64::new(0));
    let mut counted = Counted {
        inner: gunzip_layers(raw, gzip_layers),
        count: Arc::clone(&count),
    };
    if bom_len > 0 {
        let mut bom = [0; 4];
        let bom = bom.get_mut(..bom_len).ok_or_else(|| {
            FileError::new(
                FileErrorCode::Internal,
                format!("{name}: a byte order mark of {bom_len} bytes"),
            )
        })?;
        counted.read_exact(bom).map_err(|e| read_error(name, &e))?;
    }
    let text: Box<dyn Read + Send> = if encoding == encoding_rs::UTF_8 {
        Box::new(counted)
    } else {
        Box::new(DecodeReader::new(counted, encoding))
    };
    Ok((text, count))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gzip(parts: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for part in parts {
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            enc.write_all(part).unwrap();
            out.extend(enc.finish().unwrap());
        }
        out
    }

    fn read_all(bytes: Vec<u8>, layers: u8, bom: usize) -> Result<(Vec<u8>, u64), FileError> {
        let (mut s, count) = text_stream(
            "f.csv.gz",
            Box::new(io::Cursor::new(bytes)),
            layers,
            bom,
            encoding_rs::UTF_8,
        )?;
        let mut out = Vec::new();
        s.read_to_end(&mut out)
            .map_err(|e| read_error("f.csv.gz", &e))?;
        Ok((out, count.load(Ordering::Relaxed)))
    }

    #[test]
    fn every_gzip_member_is_read() {
        let (out, n) = read_all(gzip(&[b"\xEF\xBB\xBFa,b\n", b"1,2\n"]), 1, 3).unwrap();
        assert_eq!(out, b"a,b\n1,2\n");
        assert_eq!(n, 11);
    }

    #[test]
    fn corrupt_gzip_is_unreadable() {
        let mut bytes = gzip(&[&b"a,b\n1,2\n".repeat(1000)]);
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0xFF;
        bytes[mid + 1] ^= 0xFF;
        let err = read_all(bytes.clone(), 1, 0).unwrap_err();
        assert_eq!(err.code, FileErrorCode::Unreadable);
        assert!(err.message.contains("f.csv.gz"), "{}", err.message);
        // Truncated, too.
        let whole = gzip(&[&b"a,b\n1,2\n".repeat(1000)]);
        let err = read_all(whole[..whole.len() - 10].to_vec(), 1, 0).unwrap_err();
        assert_eq!(err.code, FileErrorCode::Unreadable);
    }

    #[test]
    fn nested_gzip_layers_are_all_opened() {
        // Four layers, each of two members, the inner ones split mid-line.
        let mut bytes = b"\xEF\xBB\xBFa,b\n".to_vec();
        bytes.extend(b"1,2\n".repeat(500));
        let plain = bytes[3..].to_vec();
        for _ in 0..4 {
            let cut = bytes.len() / 3;
            bytes = gzip(&[&bytes[..cut], &bytes[cut..]]);
        }
        let (out, n) = read_all(bytes, 4, 3).unwrap();
        assert_eq!(out, plain);
        assert_eq!(n, plain.len() as u64 + 3);
    }

    #[test]
    fn corrupt_inner_layer_is_unreadable() {
        let mut inner = gzip(&[&b"a,b\n1,2\n".repeat(1000)]);
        let mid = inner.len() / 2;
        inner[mid] ^= 0xFF;
        inner[mid + 1] ^= 0xFF;
        let err = read_all(gzip(&[&gzip(&[&inner])]), 3, 0).unwrap_err();
        assert_eq!(err.code, FileErrorCode::Unreadable);
        // Tagged once, by the layer that broke.
        assert_eq!(
            err.message.matches("corrupt gzip data").count(),
            1,
            "{}",
            err.message
        );
        // An inner layer cut short.
        let whole = gzip(&[&b"a,b\n1,2\n".repeat(1000)]);
        let err = read_all(gzip(&[&whole[..whole.len() - 10]]), 2, 0).unwrap_err();
        assert_eq!(err.code, FileErrorCode::Unreadable);
    }

    #[test]
    fn other_failures_are_io() {
        struct Failing;
        impl Read for Failing {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                Err(io::Error::other("disk on fire"))
            }
        }
        let (mut s, _) = text_stream("x", Box::new(Failing), 0, 0, encoding_rs::UTF_8).unwrap();
        let err = read_error("x", &s.read(&mut [0; 8]).unwrap_err());
        assert_eq!(err.code, FileErrorCode::Io);
        assert!(err.message.contains("disk on fire"));
    }
}
