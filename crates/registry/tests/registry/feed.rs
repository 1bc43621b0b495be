//! The change feed's reader never skips a committed change. On PostgreSQL, a change whose
//! transaction took its sequence number first but commits last (the classic trap: "after
//! the last number I saw" passes over it) is read by the next cycle; a rolled-back change
//! is never read; a change is read once. On SQLite, changes are read in order.

use sqlx::Connection;

use super::backends;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_committed_out_of_sequence_order_is_not_skipped() {
    for (backend, reg, _dir) in backends("feed").await {
        let b = backend.as_str();
        let mut cursor = reg.feed_cursor().await.unwrap();
        assert!(
            reg.read_changes(&mut cursor)
                .await
                .unwrap()
                .donors
                .is_empty(),
            "{b}"
        );
        if backend == "sqlite" {
            // One writer at a time: sequence order is commit order.
            sqlx::query(
                "INSERT INTO index_changes (donor_id, at) VALUES (7, 'x'), (8, 'x'), (7, 'x')",
            )
            .execute(&sqlx::SqlitePool::connect(&reg.url).await.unwrap())
            .await
            .unwrap();
            let read = reg.read_changes(&mut cursor).await.unwrap();
            assert_eq!((read.donors, read.rows), (vec![7, 8], 3), "{b}");
            assert!(
                reg.read_changes(&mut cursor)
                    .await
                    .unwrap()
                    .donors
                    .is_empty(),
                "{b}"
            );
            continue;
        }
        let mut early = sqlx::PgConnection::connect(&reg.url).await.unwrap();
        let mut late = sqlx::PgConnection::connect(&reg.url).await.unwrap();
        let mut aborted = sqlx::PgConnection::connect(&reg.url).await.unwrap();
        let insert = "INSERT INTO index_changes (donor_id, at) VALUES ($1, 'x') RETURNING seq";
        // Donor 1's change takes its number first and stays uncommitted.
        sqlx::query("BEGIN").execute(&mut early).await.unwrap();
        let seq_1: i64 = sqlx::query_scalar(insert)
            .bind(1i64)
            .fetch_one(&mut early)
            .await
            .unwrap();
        // Donor 3's change will be rolled back.
        sqlx::query("BEGIN").execute(&mut aborted).await.unwrap();
        sqlx::query_scalar::<_, i64>(insert)
            .bind(3i64)
            .fetch_one(&mut aborted)
            .await
            .unwrap();
        // Donor 2's change takes a later number and commits at once.
        sqlx::query("BEGIN").execute(&mut late).await.unwrap();
        let seq_2: i64 = sqlx::query_scalar(insert)
            .bind(2i64)
            .fetch_one(&mut late)
            .await
            .unwrap();
        sqlx::query("COMMIT").execute(&mut late).await.unwrap();
        assert!(
            seq_1 < seq_2,
            "{b}: the case needs the earlier number to commit later"
        );

        let read = reg.read_changes(&mut cursor).await.unwrap();
        assert_eq!(
            read.donors,
            [2],
            "{b}: only the committed change is visible"
        );
        // Now donor 1's change commits, below a number already read; donor 3's is undone.
        sqlx::query("COMMIT").execute(&mut early).await.unwrap();
        sqlx::query("ROLLBACK").execute(&mut aborted).await.unwrap();
        let read = reg.read_changes(&mut cursor).await.unwrap();
        assert_eq!(
            read.donors,
            [1],
            "{b}: the late commit is read, the rolled-back one never"
        );
        // Each change once, and the horizon moves past them.
        for _ in 0..3 {
            let read = reg.read_changes(&mut cursor).await.unwrap();
            assert!(read.donors.is_empty(), "{b}: {read:?}");
        }
        // A fresh cursor starts at the present. On PostgreSQL the present is the oldest
        // transaction still open in the whole server (xids are cluster-wide): while other
        // tests' transactions are open in their own databases it may lie below changes
        // already read here, which are then read again (at least once, never lost). A
        // rolled-back change is never read.
        let mut fresh = reg.feed_cursor().await.unwrap();
        let again = reg.read_changes(&mut fresh).await.unwrap().donors;
        assert!(
            again.iter().all(|d| [1, 2].contains(d)),
            "{b}: a fresh cursor reads only committed changes: {again:?}"
        );
        if b == "sqlite" {
            assert!(again.is_empty(), "{b}: {again:?}");
        }
    }
}
