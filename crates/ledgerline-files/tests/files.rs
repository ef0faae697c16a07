//! The file store on a shared directory (`file:///…`): files round-trip
//! byte for byte through streamed puts and gets (a file larger than one
//! part included), small files in memory under a limit, deletes, and keys
//! that are no plain relative path refused.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use ledgerline_files::{FileStore, FilesError, ObjectFiles};

fn temp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ledgerline-files-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_round_trip_through_a_shared_directory() {
    let root = temp("store");
    let local = temp("local");
    let files = ObjectFiles::open(&format!("file://{}", root.display())).unwrap();
    assert!(files.url().starts_with("file:///"));

    // 20 MiB + 3 bytes of a pattern: several 8 MiB parts and a short last one.
    let big: Vec<u8> = (0..(20 << 20) + 3)
        .map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let src = local.join("big.bin");
    std::fs::write(&src, &big).unwrap();
    assert_eq!(
        files.put_file("uploads/big", &src).await.unwrap(),
        big.len() as u64
    );
    assert_eq!(
        std::fs::read(root.join("uploads/big")).unwrap(),
        big,
        "stored bytes differ"
    );
    let spool = local.join("spool.bin");
    assert_eq!(
        files.get_to_file("uploads/big", &spool).await.unwrap(),
        Some(big.len() as u64)
    );
    assert_eq!(std::fs::read(&spool).unwrap(), big);
    assert!(!spool.with_extension("part").exists());

    // Small things in memory, bounded.
    files
        .put_bytes("jobs/j/report.json", "{\"a\":1}".into())
        .await
        .unwrap();
    let got = files
        .get_bytes("jobs/j/report.json", 100)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&got[..], b"{\"a\":1}");
    assert!(
        files.get_bytes("jobs/j/report.json", 3).await.is_err(),
        "over the limit was read"
    );
    assert!(files
        .get_bytes("jobs/j/none.json", 100)
        .await
        .unwrap()
        .is_none());
    assert_eq!(
        files
            .get_to_file("uploads/none", &local.join("x"))
            .await
            .unwrap(),
        None
    );

    // An empty file is a file.
    let empty = local.join("empty");
    std::fs::write(&empty, b"").unwrap();
    assert_eq!(files.put_file("uploads/empty", &empty).await.unwrap(), 0);
    assert_eq!(
        files
            .get_to_file("uploads/empty", &local.join("e2"))
            .await
            .unwrap(),
        Some(0)
    );

    assert!(files.delete("uploads/big").await.unwrap());
    assert!(!files.delete("uploads/big").await.unwrap());
    assert!(!root.join("uploads/big").exists());

    for bad in ["", "../x", "a/../b", "/etc/passwd", "a//b", "a\\b", "./a"] {
        let e = files.put_bytes(bad, "x".into()).await.unwrap_err();
        assert!(matches!(e, FilesError::BadKey(_)), "{bad:?}: {e}");
    }
    assert!(matches!(
        ObjectFiles::open("s4://x"),
        Err(FilesError::Unsupported(_))
    ));
    assert!(matches!(
        ObjectFiles::open("file://relative"),
        Err(FilesError::Unsupported(_))
    ));
    std::fs::remove_dir_all(&root).unwrap();
    std::fs::remove_dir_all(&local).unwrap();
}
