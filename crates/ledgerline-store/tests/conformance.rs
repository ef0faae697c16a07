//! The embedded store passes the store conformance suite.

use ledgerline_store::{conformance, DataDir, SqliteStore, Store};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_store_passes_the_conformance_suite() {
    let tmp = std::env::temp_dir().join(format!("ledgerline-store-{}", ledgerline_store::new_id()));
    let dir = DataDir::open(&tmp).unwrap();
    let store = SqliteStore::open(&dir.database_path()).unwrap();
    assert_eq!(store.kind(), "embedded");
    conformance::run(conformance::Under::Jobs(&store))
        .await
        .unwrap();
    // Everything survives reopening the database (a restart).
    drop(store);
    let store = SqliteStore::open(&dir.database_path()).unwrap();
    let by_state = store.jobs_by_state().await.unwrap();
    let total: u64 = by_state.iter().map(|(_, n)| n).sum();
    assert!(total >= 7, "jobs lost on reopening: {by_state:?}");
    std::fs::remove_dir_all(&tmp).unwrap();
}
