//! Streaming transcoding of non-UTF-8 text to UTF-8, so that one parser
//! reads every encoding.

use std::io::{self, Read};

use encoding_rs::{Decoder, DecoderResult, Encoding};

/// Bytes of raw input read from the inner reader at a time.
const IN_LEN: usize = 64 * 1024;
/// Bytes of UTF-8 decoded at a time: enough that the decoder can always
/// write a character (it needs at most 4 bytes, or 3 per UTF-16 code unit).
const OUT_LEN: usize = 64 * 1024;

/// A byte that never occurs in UTF-8, written for each malformed sequence.
pub(crate) const MALFORMED_MARK: u8 = 0xFF;

/// Decodes `encoding` read from `inner` into UTF-8.
///
/// A malformed sequence (an unpaired UTF-16 surrogate, say) is written as
/// [`MALFORMED_MARK`] rather than U+FFFD: the record holding it then fails
/// the parser's UTF-8 check and becomes `invalid_encoding`, as SPEC §1
/// requires, where a replacement character would pass unnoticed. The
/// byte order mark, if any, must already be skipped.
pub(crate) struct DecodeReader<R> {
    inner: R,
    decoder: Decoder,
    input: Box<[u8]>,
    in_pos: usize,
    in_len: usize,
    in_eof: bool,
    output: Box<[u8]>,
    out_pos: usize,
    out_len: usize,
    /// The decoder has been told the input ended and has flushed.
    finished: bool,
}

impl<R: Read> DecodeReader<R> {
    /// A reader of UTF-8 decoded from `encoding` read from `inner`.
    pub(crate) fn new(inner: R, encoding: &'static Encoding) -> DecodeReader<R> {
        DecodeReader {
            inner,
            decoder: encoding.new_decoder_without_bom_handling(),
            input: vec![0; IN_LEN].into_boxed_slice(),
            in_pos: 0,
            in_len: 0,
            in_eof: false,
            output: vec![0; OUT_LEN].into_boxed_slice(),
            out_pos: 0,
            out_len: 0,
            finished: false,
        }
    }

    /// Decodes more output; leaves `out_len == 0` only at the end.
    fn fill(&mut self) -> io::Result<()> {
        self.out_pos = 0;
        self.out_len = 0;
        while !self.finished && self.out_len == 0 {
            if self.in_pos == self.in_len && !self.in_eof {
                self.in_pos = 0;
                self.in_len = loop {
                    match self.inner.read(&mut self.input) {
                        Ok(n) => break n,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => return Err(e),
                    }
                };
                self.in_eof = self.in_len == 0;
            }
            // Decode until the output is nearly full, keeping one byte free
            // for a malformed-sequence mark.
            loop {
                let last = self.in_eof;
                let room = OUT_LEN - 1;
                let (result, read, written) = self.decoder.decode_to_utf8_without_replacement(
                    &self.input[self.in_pos..self.in_len],
                    &mut self.output[self.out_len..room],
                    last,
                );
                self.in_pos += read;
                self.out_len += written;
                match result {
                    DecoderResult::InputEmpty => {
                        self.finished = last;
                        break;
                    }
                    DecoderResult::OutputFull => break,
                    DecoderResult::Malformed(..) => {
                        self.output[self.out_len] = MALFORMED_MARK;
                        self.out_len += 1;
                        if self.out_len + 16 >= room {
                            break;
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

impl<R: Read> Read for DecodeReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.out_pos == self.out_len {
            self.fill()?;
        }
        let n = buf.len().min(self.out_len - self.out_pos);
        buf[..n].copy_from_slice(&self.output[self.out_pos..self.out_pos + n]);
        self.out_pos += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes `bytes` through a reader that hands out `piece` bytes at a
    /// time, reading the result `take` bytes at a time.
    fn decode(bytes: &[u8], encoding: &'static Encoding, piece: usize, take: usize) -> Vec<u8> {
        struct Trickle<'a>(&'a [u8], usize);
        impl Read for Trickle<'_> {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                let n = self.1.min(self.0.len()).min(buf.len());
                buf[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let mut reader = DecodeReader::new(Trickle(bytes, piece), encoding);
        let mut out = Vec::new();
        let mut buf = vec![0; take];
        loop {
            let n = reader.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
        }
        out
    }

    #[test]
    fn windows_1252() {
        // 0x80 is the euro sign, 0xE9 é; 0x81 is undefined in the standard
        // but WHATWG maps it to U+0081, so Windows-1252 never fails.
        let got = decode(b"\x80 caf\xE9 \x81", encoding_rs::WINDOWS_1252, 1, 3);
        assert_eq!(got, "€ café \u{81}".as_bytes());
    }

    #[test]
    fn utf16_both_orders_and_unpaired_surrogates() {
        // "a€" then an unpaired high surrogate D800 followed by "b".
        let le = b"a\x00\xAC\x20\x00\xD8b\x00";
        let be = b"\x00a\x20\xAC\xD8\x00\x00b";
        let want = [&b"a"[..], "€".as_bytes(), &[MALFORMED_MARK], b"b"].concat();
        for piece in [1, 3, 100] {
            assert_eq!(decode(le, encoding_rs::UTF_16LE, piece, 2), want);
            assert_eq!(decode(be, encoding_rs::UTF_16BE, piece, 7), want);
        }
        // A lone trailing byte is malformed too.
        assert_eq!(decode(b"a\x00b", encoding_rs::UTF_16LE, 2, 10), b"a\xFF");
    }

    #[test]
    fn larger_than_the_buffers() {
        let text: String = (0..50_000)
            .map(|i| if i % 7 == 0 { '€' } else { 'x' })
            .collect();
        let (bytes, _, _) = encoding_rs::WINDOWS_1252.encode(&text);
        assert_eq!(
            decode(&bytes, encoding_rs::WINDOWS_1252, 10_000, 4096),
            text.as_bytes()
        );
    }
}
