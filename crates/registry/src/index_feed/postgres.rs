//! The index load on PostgreSQL: one native stream, parsed in chunks.

use matching::DonorIndex;
use sqlx::Row;

use crate::model::Donor;
use crate::{Registry, Result};

impl Registry {
    pub(crate) async fn load_index_pg(&self, index: &mut DonorIndex, today: i64) -> Result<usize> {
        use futures_lite::StreamExt;
        use rayon::prelude::*;
        const CHUNK: usize = 50_000;
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(1)
            .connect(&self.url)
            .await?;
        let sql = format!("{} ORDER BY d.id", super::rows::INDEX_COLUMNS);
        let splitter = super::rows::PositionSplitter::new();
        let mut loaded = 0;
        let mut chunk: Vec<(Donor, String)> = Vec::with_capacity(CHUNK);
        let mut rows = sqlx::query(sqlx::AssertSqlSafe(sql)).fetch(&pool);
        loop {
            let row = rows.next().await.transpose()?;
            let end = row.is_none();
            if let Some(row) = row {
                let text = |i: usize| -> Result<String> { Ok(row.try_get::<String, _>(i)?) };
                let gl = text(12)?;
                let donor = super::rows::index_donor(
                    row.try_get(0)?,
                    row.try_get(1)?,
                    [
                        &text(2)?,
                        &text(3)?,
                        &text(4)?,
                        &text(5)?,
                        &text(6)?,
                        &text(7)?,
                    ],
                    text(8)?,
                    text(9)?,
                    row.try_get(10)?,
                    row.try_get(11)?,
                    Some(String::new()),
                );
                if self.is_indexable(&donor, today) {
                    chunk.push((donor, gl));
                }
            }
            if chunk.len() == CHUNK || (end && !chunk.is_empty()) {
                let positions: Vec<super::rows::PositionTexts> = chunk
                    .par_iter()
                    .map(|(_, gl)| splitter.positions(gl))
                    .collect::<Result<_>>()?;
                for ((donor, _), texts) in chunk.iter().zip(&positions) {
                    self.upsert_texts(index, donor, texts)?;
                    loaded += 1;
                }
                chunk.clear();
            }
            if end {
                break;
            }
        }
        drop(rows);
        pool.close().await;
        Ok(loaded)
    }
}
