//! File formats and the magic numbers that first tell them apart.

/// A file format ledgerline reads (SPEC §8 `source.format`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    /// Delimited text.
    Csv,
    /// Office Open XML workbook.
    Xlsx,
    /// Office Open XML workbook with macros (`xl/vbaProject.bin`).
    Xlsm,
    /// Excel binary workbook (`xl/workbook.bin`).
    Xlsb,
    /// Excel 97–2003 workbook in an OLE2 compound file.
    Xls,
    /// OpenDocument spreadsheet.
    Ods,
}

impl Format {
    /// The format as written in reports: `"csv"`, `"xlsx"`, `"xlsm"`,
    /// `"xlsb"`, `"xls"` or `"ods"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Xlsx => "xlsx",
            Format::Xlsm => "xlsm",
            Format::Xlsb => "xlsb",
            Format::Xls => "xls",
            Format::Ods => "ods",
        }
    }

    /// Whether this is a spreadsheet (every format but [`Format::Csv`]).
    pub fn is_excel(self) -> bool {
        self != Format::Csv
    }
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the first bytes of a file say it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Magic {
    /// No bytes at all.
    Empty,
    /// A gzip stream (`1F 8B`).
    Gzip,
    /// A zip archive (`PK\x03\x04`, or `PK\x05\x06` for an empty one).
    Zip,
    /// An OLE2 compound file (`D0 CF 11 E0 A1 B1 1A E1`).
    Ole2,
    /// Anything else: treated as text.
    Text,
}

/// The OLE2 compound file signature.
const OLE2_MAGIC: [u8; 8] = [0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1];

/// Classify by the first bytes (give at least 8 when the file has them).
///
/// `PK\x03\x04` and `PK\x05\x06` are [`Magic::Zip`];
/// `D0 CF 11 E0 A1 B1 1A E1` is [`Magic::Ole2`]; `1F 8B` is [`Magic::Gzip`];
/// no bytes is [`Magic::Empty`]; anything else is [`Magic::Text`].
pub fn sniff_magic(prefix: &[u8]) -> Magic {
    if prefix.is_empty() {
        Magic::Empty
    } else if prefix.starts_with(&[0x1F, 0x8B]) {
        Magic::Gzip
    } else if prefix.starts_with(b"PK\x03\x04") || prefix.starts_with(b"PK\x05\x06") {
        Magic::Zip
    } else if prefix.starts_with(&OLE2_MAGIC) {
        Magic::Ole2
    } else {
        Magic::Text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magic_numbers() {
        assert_eq!(sniff_magic(b""), Magic::Empty);
        assert_eq!(sniff_magic(&[0x1F, 0x8B, 8, 0]), Magic::Gzip);
        assert_eq!(sniff_magic(b"PK\x03\x04\x14\x00\x00\x00"), Magic::Zip);
        assert_eq!(sniff_magic(b"PK\x05\x06\x00\x00\x00\x00"), Magic::Zip);
        assert_eq!(sniff_magic(&OLE2_MAGIC), Magic::Ole2);
        assert_eq!(sniff_magic(b"id,amount\n"), Magic::Text);
    }

    #[test]
    fn short_or_near_miss_prefixes_are_text() {
        // One byte of gzip, a spanned-zip marker and a cut OLE2 signature
        // are not containers.
        assert_eq!(sniff_magic(&[0x1F]), Magic::Text);
        assert_eq!(sniff_magic(b"PK\x07\x08"), Magic::Text);
        assert_eq!(sniff_magic(b"PK"), Magic::Text);
        assert_eq!(sniff_magic(&OLE2_MAGIC[..7]), Magic::Text);
    }

    #[test]
    fn format_names() {
        let names: Vec<&str> = [
            Format::Csv,
            Format::Xlsx,
            Format::Xlsm,
            Format::Xlsb,
            Format::Xls,
            Format::Ods,
        ]
        .into_iter()
        .map(Format::as_str)
        .collect();
        assert_eq!(names, ["csv", "xlsx", "xlsm", "xlsb", "xls", "ods"]);
        assert_eq!(Format::Ods.to_string(), "ods");
        assert!(!Format::Csv.is_excel());
        assert!(Format::Xls.is_excel());
    }
}
