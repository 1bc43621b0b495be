//! Work lists: pages in id order with a stable cursor (keyset paging: a row added or
//! removed elsewhere never shifts a page), built from filters whose values are always bound,
//! never spliced into the SQL.

use sqlx::any::AnyRow;

use crate::{Registry, RegistryError, Result};

/// The largest page a list returns.
pub const MAX_PAGE: u32 = 500;

/// Where a page starts and how long it is.
#[derive(Debug, Clone, Default)]
pub struct PageRequest {
    /// The `next_cursor` of the previous page; none for the first.
    pub cursor: Option<String>,
    /// Rows per page (1–500; default 50).
    pub limit: Option<u32>,
}

/// One page of a list, and the cursor of the next (none on the last page).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

impl PageRequest {
    fn after(&self) -> Result<i64> {
        match self.cursor.as_deref() {
            None | Some("") => Ok(0),
            Some(c) => c.parse::<i64>().ok().filter(|v| *v > 0).ok_or_else(|| {
                RegistryError::invalid(
                    "cursor",
                    format!("`{c}` is not a cursor this list returned"),
                )
            }),
        }
    }

    fn size(&self) -> Result<u32> {
        match self.limit {
            None => Ok(50),
            Some(n) if (1..=MAX_PAGE).contains(&n) => Ok(n),
            Some(n) => Err(RegistryError::invalid(
                "limit",
                format!("{n} is not between 1 and {MAX_PAGE}"),
            )),
        }
    }
}

/// A bound value of a filter.
#[derive(Debug, Clone)]
pub(crate) enum Arg {
    Int(i64),
    Text(String),
}

/// The `WHERE` of a list: clauses joined by `AND`, their values bound in order.
#[derive(Debug, Default)]
pub(crate) struct Filter {
    clauses: Vec<String>,
    args: Vec<Arg>,
}

impl Filter {
    /// A clause with one value; `?` in `clause` marks where it goes.
    pub(crate) fn with(&mut self, clause: &str, arg: Arg) -> &mut Self {
        self.args.push(arg);
        self.clauses
            .push(clause.replace('?', &format!("${}", self.args.len())));
        self
    }

    /// A clause without values (a constant condition).
    pub(crate) fn fixed(&mut self, clause: &str) -> &mut Self {
        self.clauses.push(clause.to_string());
        self
    }
}

impl Registry {
    /// One page of `select` (which must select `id_column` as `id`… and name its table)
    /// under `filter`, in ascending `id_column` order.
    pub(crate) async fn page<T>(
        &self,
        select: &str,
        id_column: &str,
        mut filter: Filter,
        page: &PageRequest,
        map: impl Fn(&AnyRow) -> Result<T>,
        id_of: impl Fn(&T) -> i64,
    ) -> Result<Page<T>> {
        let after = page.after()?;
        let size = page.size()?;
        filter.with(&format!("{id_column} > ?"), Arg::Int(after));
        let sql = format!(
            "{select} WHERE {} ORDER BY {id_column} LIMIT {}",
            filter.clauses.join(" AND "),
            size + 1
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for arg in &filter.args {
            query = match arg {
                Arg::Int(v) => query.bind(*v),
                Arg::Text(v) => query.bind(v.clone()),
            };
        }
        let rows = query.fetch_all(&self.pool).await?;
        let mut items = rows.iter().map(map).collect::<Result<Vec<T>>>()?;
        let next_cursor = if items.len() > size as usize {
            items.truncate(size as usize);
            items.last().map(|t| id_of(t).to_string())
        } else {
            None
        };
        Ok(Page { items, next_cursor })
    }
}
