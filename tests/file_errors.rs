//! A file error as an embedder meets it: the code to match on, the file,
//! the operating system's error kind and the source error, without parsing
//! a message.

use std::error::Error;
use std::io::ErrorKind;

use ledgerline::baseline::StandardProcessor;
use ledgerline::core::{FileErrorCode, FileProcessor, Settings};
use ledgerline::optimized::OptimizedProcessor;

#[test]
fn io_errors_carry_kind_path_and_source() {
    let missing = std::env::temp_dir().join("ledgerline-no-such-file.csv");
    let dir = std::env::temp_dir();
    let processors: [Box<dyn FileProcessor>; 2] = [
        Box::new(StandardProcessor::new(Settings::default())),
        Box::new(OptimizedProcessor::new(Settings::default())),
    ];
    for p in &processors {
        let e = p.process_file(&missing).unwrap_err();
        assert_eq!(e.code, FileErrorCode::Io);
        assert_eq!(e.io_kind(), Some(ErrorKind::NotFound), "{e:?}");
        assert_eq!(e.path(), Some(missing.as_path()));
        let source = e.source().expect("the operating system's error");
        assert!(
            source.to_string().to_lowercase().contains("no such file"),
            "{source}"
        );
        // Reading a directory is another kind, told apart the same way.
        let e = p.process_file(&dir).unwrap_err();
        assert_eq!(e.code, FileErrorCode::Io);
        assert_ne!(e.io_kind(), Some(ErrorKind::NotFound));
        assert!(e.io_kind().is_some());
        // The report shape is unchanged: code and message only.
        let json = e.to_report_json();
        assert_eq!(json["error"].as_object().unwrap().len(), 2);
    }
    // Equality is what a report holds; context does not change it.
    let a = ledgerline::core::FileError::new(FileErrorCode::Unreadable, "x");
    let b = a.clone().with_path("/elsewhere");
    assert_eq!(a, b);
    assert_eq!(b.path().unwrap(), std::path::Path::new("/elsewhere"));
}
