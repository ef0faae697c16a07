//! Workbook formats inside containers: zip (xlsx, xlsm, xlsb, ods) and OLE2
//! (xls).
//!
//! Both read only a directory — the zip central directory, the OLE2 FAT and
//! directory — plus, for ods, the few bytes of the `mimetype` entry; never
//! the workbook itself.

use std::io::{Read, Seek, SeekFrom};

use ledgerline_core::{FileError, FileErrorCode};

use crate::Format;

/// The `mimetype` content that marks an OpenDocument spreadsheet.
const ODS_MIMETYPE: &[u8] = b"application/vnd.oasis.opendocument.spreadsheet";

/// Zip container → [`Format::Xlsx`], [`Format::Xlsm`], [`Format::Xlsb`] or
/// [`Format::Ods`] per SPEC §1, else `unsupported_format`.
///
/// Entry names are compared exactly, byte for byte. The checks go in the
/// order of the SPEC table: `xl/workbook.xml` (xlsm when `xl/vbaProject.bin`
/// is there too), then `xl/workbook.bin`, then a `mimetype` entry whose
/// content is exactly `application/vnd.oasis.opendocument.spreadsheet`.
/// An ODS whose manifest declares encrypted entries is `unreadable`.
///
/// A zip that cannot be opened (truncated, no central directory) is
/// `unreadable` (SPEC §10), except when it starts with `PK\x05\x06`: such a
/// file has no entries before its end record, so it cannot hold a workbook
/// whatever else is wrong with it, and the table of §1 makes it
/// `unsupported_format`. An I/O failure is `io`.
pub fn zip_format<R: Read + Seek>(mut reader: R) -> Result<Format, FileError> {
    let empty_zip = starts_with(&mut reader, b"PK\x05\x06")?;
    let mut archive = match zip::ZipArchive::new(reader) {
        Ok(archive) => archive,
        Err(zip::result::ZipError::Io(e)) if !is_corruption(&e) => {
            return Err(FileError::new(FileErrorCode::Io, e.to_string()));
        }
        Err(_) if empty_zip => {
            return Err(unsupported("an empty zip archive is not a workbook"));
        }
        Err(e) => {
            return Err(FileError::new(
                FileErrorCode::Unreadable,
                format!("the zip archive cannot be opened: {e}"),
            ));
        }
    };
    if archive.index_for_name_raw(b"xl/workbook.xml").is_some() {
        return Ok(
            if archive.index_for_name_raw(b"xl/vbaProject.bin").is_some() {
                Format::Xlsm
            } else {
                Format::Xlsx
            },
        );
    }
    if archive.index_for_name_raw(b"xl/workbook.bin").is_some() {
        return Ok(Format::Xlsb);
    }
    if let Some(index) = archive.index_for_name_raw(b"mimetype") {
        // One byte more than the expected text is enough to tell a longer
        // mimetype (e.g. `…spreadsheet-template`) apart, and keeps the read
        // bounded whatever the entry claims.
        let mut content = Vec::with_capacity(ODS_MIMETYPE.len() + 1);
        let read = archive
            .by_index(index)
            .map_err(|e| zip_error(&e))
            .and_then(|entry| {
                entry
                    .take(ODS_MIMETYPE.len() as u64 + 1)
                    .read_to_end(&mut content)
                    .map_err(|e| io_or_unreadable(&e))
            });
        read?;
        if content == ODS_MIMETYPE {
            return if ods_is_encrypted(&mut archive)? {
                Err(FileError::new(
                    FileErrorCode::Unreadable,
                    "the spreadsheet is encrypted (password-protected)",
                ))
            } else {
                Ok(Format::Ods)
            };
        }
    }
    Err(unsupported(
        "a zip archive that holds no xlsx, xlsb or ods workbook",
    ))
}

/// How much of an ODS manifest is searched for encryption: a manifest lists
/// one short element per entry, and the encrypted `content.xml` is among the
/// first, so this bounds the read without missing a real case.
const MANIFEST_LIMIT: u64 = 1 << 20;

/// Whether an ODS is password-protected: its `META-INF/manifest.xml` then
/// gives `encryption-data` for the encrypted entries.
///
/// The SPEC §1 table names only OLE2 encryption, but §8 makes every
/// encrypted workbook `unreadable`, and an encrypted ODS is a zip whose
/// entries hold ciphertext: telling it here keeps that error out of the
/// spreadsheet reader, where it would surface as an obscure parse failure.
fn ods_is_encrypted<R: Read + Seek>(archive: &mut zip::ZipArchive<R>) -> Result<bool, FileError> {
    let Some(index) = archive.index_for_name_raw(b"META-INF/manifest.xml") else {
        return Ok(false);
    };
    let mut manifest = Vec::new();
    archive
        .by_index(index)
        .map_err(|e| zip_error(&e))?
        .take(MANIFEST_LIMIT)
        .read_to_end(&mut manifest)
        .map_err(|e| io_or_unreadable(&e))?;
    let marker = b"encryption-data";
    Ok(manifest.windows(marker.len()).any(|w| w == marker))
}

/// OLE2 compound file → [`Format::Xls`].
///
/// A stream named `EncryptedPackage` (a password-protected Office Open XML
/// workbook) is `unreadable`; so is a file with no `Workbook` or `Book`
/// stream at its root (names compared ignoring case, SPEC §10) and one whose
/// directory cannot be read. An I/O failure is `io`.
pub fn ole2_format<R: Read + Seek>(reader: R) -> Result<Format, FileError> {
    // `cfb` reads the header, FAT, DIFAT, mini FAT and directory: a few bytes
    // per sector of the file, never the streams themselves.
    let compound = cfb::CompoundFile::open(reader).map_err(|e| {
        if is_corruption(&e) {
            FileError::new(
                FileErrorCode::Unreadable,
                format!("the OLE2 compound file cannot be opened: {e}"),
            )
        } else {
            FileError::new(FileErrorCode::Io, e.to_string())
        }
    })?;
    let mut has_workbook = false;
    for entry in compound.read_root_storage() {
        if !entry.is_stream() {
            continue;
        }
        let name = entry.name();
        if name.eq_ignore_ascii_case("EncryptedPackage") {
            return Err(FileError::new(
                FileErrorCode::Unreadable,
                "the workbook is encrypted (password-protected)",
            ));
        }
        if name.eq_ignore_ascii_case("Workbook") || name.eq_ignore_ascii_case("Book") {
            has_workbook = true;
        }
    }
    if has_workbook {
        Ok(Format::Xls)
    } else {
        Err(FileError::new(
            FileErrorCode::Unreadable,
            "the OLE2 compound file holds no Workbook or Book stream",
        ))
    }
}

/// Whether the reader's first bytes are `magic`; leaves it at the start.
fn starts_with<R: Read + Seek>(reader: &mut R, magic: &[u8]) -> Result<bool, FileError> {
    let io = |e: std::io::Error| FileError::new(FileErrorCode::Io, e.to_string());
    reader.seek(SeekFrom::Start(0)).map_err(io)?;
    let mut head = Vec::with_capacity(magic.len());
    reader
        .by_ref()
        .take(magic.len() as u64)
        .read_to_end(&mut head)
        .map_err(io)?;
    reader.seek(SeekFrom::Start(0)).map_err(io)?;
    Ok(head == magic)
}

/// Whether an I/O error reports bad content (corrupt or cut short) rather
/// than a failure of the operating system.
pub(crate) fn is_corruption(e: &std::io::Error) -> bool {
    use std::io::ErrorKind;
    matches!(
        e.kind(),
        ErrorKind::InvalidData | ErrorKind::InvalidInput | ErrorKind::UnexpectedEof
    )
}

fn io_or_unreadable(e: &std::io::Error) -> FileError {
    if is_corruption(e) {
        FileError::new(
            FileErrorCode::Unreadable,
            format!("a zip entry cannot be read: {e}"),
        )
    } else {
        FileError::new(FileErrorCode::Io, e.to_string())
    }
}

fn zip_error(e: &zip::result::ZipError) -> FileError {
    match e {
        zip::result::ZipError::Io(io) => io_or_unreadable(io),
        other => FileError::new(
            FileErrorCode::Unreadable,
            format!("a zip entry cannot be read: {other}"),
        ),
    }
}

fn unsupported(message: &str) -> FileError {
    FileError::new(FileErrorCode::UnsupportedFormat, message)
}

#[cfg(test)]
pub(crate) mod tests {
    use std::io::{Cursor, Write};

    use super::*;

    /// A zip holding the given entries, stored or deflated.
    pub(crate) fn zip_of(entries: &[(&str, &[u8])], deflated: bool) -> Vec<u8> {
        let mut writer = zip::ZipWriter::new(Cursor::new(Vec::new()));
        let method = if deflated {
            zip::CompressionMethod::Deflated
        } else {
            zip::CompressionMethod::Stored
        };
        let options = zip::write::SimpleFileOptions::default().compression_method(method);
        for (name, content) in entries {
            writer.start_file(*name, options).unwrap();
            writer.write_all(content).unwrap();
        }
        writer.finish().unwrap().into_inner()
    }

    fn zip_bytes(bytes: &[u8]) -> Result<Format, FileError> {
        zip_format(Cursor::new(bytes))
    }

    fn code(result: Result<Format, FileError>) -> FileErrorCode {
        result.unwrap_err().code
    }

    #[test]
    fn xlsx_xlsm_xlsb_ods() {
        let xlsx = zip_of(
            &[
                ("[Content_Types].xml", b"<x/>"),
                ("xl/workbook.xml", b"<w/>"),
            ],
            false,
        );
        assert_eq!(zip_bytes(&xlsx).unwrap(), Format::Xlsx);
        let xlsm = zip_of(
            &[("xl/workbook.xml", b"<w/>"), ("xl/vbaProject.bin", b"\x00")],
            true,
        );
        assert_eq!(zip_bytes(&xlsm).unwrap(), Format::Xlsm);
        let xlsb = zip_of(&[("xl/workbook.bin", b"\x83\x01")], true);
        assert_eq!(zip_bytes(&xlsb).unwrap(), Format::Xlsb);
        let ods = zip_of(
            &[("mimetype", ODS_MIMETYPE), ("content.xml", b"<office/>")],
            false,
        );
        assert_eq!(zip_bytes(&ods).unwrap(), Format::Ods);
    }

    #[test]
    fn xlsx_wins_over_xlsb_in_table_order() {
        let both = zip_of(&[("xl/workbook.bin", b""), ("xl/workbook.xml", b"")], false);
        assert_eq!(zip_bytes(&both).unwrap(), Format::Xlsx);
    }

    #[test]
    fn vba_project_without_workbook_xml_is_not_xlsm() {
        let vba = zip_of(&[("xl/vbaProject.bin", b"\x00")], false);
        assert_eq!(code(zip_bytes(&vba)), FileErrorCode::UnsupportedFormat);
    }

    #[test]
    fn deflated_mimetype_still_means_ods() {
        let ods = zip_of(&[("mimetype", ODS_MIMETYPE)], true);
        assert_eq!(zip_bytes(&ods).unwrap(), Format::Ods);
    }

    #[test]
    fn entry_names_are_compared_exactly() {
        for name in [
            "XL/workbook.xml",
            "xl/Workbook.xml",
            "xl\\workbook.xml",
            "/xl/workbook.xml",
        ] {
            let zip = zip_of(&[(name, b"<w/>")], false);
            assert_eq!(
                code(zip_bytes(&zip)),
                FileErrorCode::UnsupportedFormat,
                "{name}"
            );
        }
    }

    #[test]
    fn encrypted_ods_is_unreadable() {
        let manifest = br#"<manifest:manifest><manifest:file-entry manifest:full-path="content.xml"><manifest:encryption-data manifest:checksum-type="sha256"/></manifest:file-entry></manifest:manifest>"#;
        let ods = zip_of(
            &[
                ("mimetype", ODS_MIMETYPE),
                ("META-INF/manifest.xml", manifest),
            ],
            true,
        );
        assert_eq!(code(zip_bytes(&ods)), FileErrorCode::Unreadable);
        let plain = br#"<manifest:manifest><manifest:file-entry manifest:full-path="content.xml"/></manifest:manifest>"#;
        let ods = zip_of(
            &[("mimetype", ODS_MIMETYPE), ("META-INF/manifest.xml", plain)],
            true,
        );
        assert_eq!(zip_bytes(&ods).unwrap(), Format::Ods);
    }

    #[test]
    fn other_mimetypes_are_unsupported() {
        for mimetype in [
            &b"application/vnd.oasis.opendocument.text"[..],
            b"application/vnd.oasis.opendocument.spreadsheet-template",
            b"application/vnd.oasis.opendocument.spreadsheet\n",
            b"",
        ] {
            let zip = zip_of(&[("mimetype", mimetype)], false);
            assert_eq!(code(zip_bytes(&zip)), FileErrorCode::UnsupportedFormat);
        }
    }

    #[test]
    fn zip_without_workbook_is_unsupported() {
        let zip = zip_of(&[("readme.txt", b"hello"), ("data.csv", b"a,b\n")], true);
        assert_eq!(code(zip_bytes(&zip)), FileErrorCode::UnsupportedFormat);
    }

    #[test]
    fn empty_zip_is_unsupported() {
        let zip = zip_of(&[], false);
        assert!(
            zip.starts_with(b"PK\x05\x06"),
            "an empty zip is its end record"
        );
        assert_eq!(code(zip_bytes(&zip)), FileErrorCode::UnsupportedFormat);
        // Even a damaged end record cannot hide a workbook.
        assert_eq!(
            code(zip_bytes(b"PK\x05\x06\x00\x00")),
            FileErrorCode::UnsupportedFormat
        );
    }

    #[test]
    fn truncated_zip_is_unreadable() {
        let xlsx = zip_of(&[("xl/workbook.xml", &[b'x'; 4000][..])], false);
        // Cut before the central directory: the local entry is all there is.
        let cut = &xlsx[..xlsx.len() / 2];
        assert_eq!(code(zip_bytes(cut)), FileErrorCode::Unreadable);
        assert_eq!(code(zip_bytes(b"PK\x03\x04")), FileErrorCode::Unreadable);
    }

    #[test]
    fn ole2_without_compound_structure_is_unreadable() {
        let mut bytes = vec![0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1];
        bytes.extend_from_slice(&[0; 100]);
        assert_eq!(
            ole2_format(Cursor::new(bytes)).unwrap_err().code,
            FileErrorCode::Unreadable
        );
    }

    /// An OLE2 file whose root holds the given streams.
    pub(crate) fn ole2_of(streams: &[&str]) -> Vec<u8> {
        let mut compound = cfb::CompoundFile::create(Cursor::new(Vec::new())).unwrap();
        for name in streams {
            let mut stream = compound.create_stream(format!("/{name}")).unwrap();
            stream.write_all(b"\x09\x08\x10\x00").unwrap();
        }
        compound.flush().unwrap();
        compound.into_inner().into_inner()
    }

    #[test]
    fn ole2_streams() {
        let ole = |streams: &[&str]| ole2_format(Cursor::new(ole2_of(streams)));
        assert_eq!(ole(&["Workbook"]).unwrap(), Format::Xls);
        assert_eq!(ole(&["Book"]).unwrap(), Format::Xls);
        assert_eq!(
            ole(&["WORKBOOK", "SummaryInformation"]).unwrap(),
            Format::Xls
        );
        assert_eq!(ole(&["book"]).unwrap(), Format::Xls);
        assert_eq!(code(ole(&["WordDocument"])), FileErrorCode::Unreadable);
        assert_eq!(code(ole(&[])), FileErrorCode::Unreadable);
        assert_eq!(
            code(ole(&["EncryptionInfo", "EncryptedPackage"])),
            FileErrorCode::Unreadable
        );
        // Encryption wins even beside a workbook stream.
        assert_eq!(
            code(ole(&["Workbook", "EncryptedPackage"])),
            FileErrorCode::Unreadable
        );
    }
}
