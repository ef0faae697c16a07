//! Content-based detection of invoice file formats, text encodings and CSV
//! delimiters (SPEC §1).
//!
//! Detection never looks at a file's name and never tries parsers in turn: it
//! reads a bounded prefix (at most [`SAMPLE_LEN`] + 1 bytes of the file, or of
//! its decompressed content for gzip, nested up to [`MAX_GZIP_LAYERS`] deep)
//! and, for containers, the zip central directory or the OLE2 directory.
//!
//! - [`sniff_magic`] classifies the first bytes as a [`Magic`].
//! - [`zip_format`] and [`ole2_format`] tell the workbook [`Format`] inside a
//!   container.
//! - [`text_layout`] decides a text file's encoding, BOM and delimiter as a
//!   [`TextLayout`].
//! - [`detect_path`] and [`detect_bytes`] do all of §1 and return a
//!   [`Detection`].
//!
//! # Example
//!
//! ```
//! use ledgerline_core::Settings;
//! use ledgerline_detect::{detect_bytes, Format};
//!
//! let detection = detect_bytes("sales.csv", b"id;amount\n1;2,50\n", &Settings::default())?;
//! assert_eq!(detection.format, Format::Csv);
//! let text = detection.text.ok_or("a csv file has a text layout")?;
//! assert_eq!(text.delimiter, b';');
//! assert_eq!(text.encoding, encoding_rs::UTF_8);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]

mod container;
mod detect;
mod magic;
mod text;

pub use container::{ole2_format, zip_format};
pub use detect::{detect_bytes, detect_path, Detection, MAX_GZIP_LAYERS};
pub use magic::{sniff_magic, Format, Magic};
pub use text::{sniff_delimiter, text_layout, TextLayout, DELIMITERS, SAMPLE_LEN};
