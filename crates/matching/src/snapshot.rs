//! The index as bytes, and back: what a server starting from a snapshot file loads instead
//! of reading every donor from the store. The bytes hold what cannot be derived (each
//! locus's typings as text in id order, genotype pairs, the per-row columns and attributes,
//! the free rows); what can be derived is rebuilt on reading (typing expansions, genotype
//! counts, the key → row map, posting lists), so a snapshot stays small and a damaged or
//! foreign one cannot smuggle in an inconsistent index. Reading checks every length, id
//! and flag and names what is wrong; it never panics. Integers are little-endian.
//!
//! The file around these bytes (versions, IMGT/HLA release, feed position, checksum) is
//! the registry's business (`registry::snapshot`).

use hla::{AlleleList, TypingError};

use crate::index::{
    ABO_SHIFT, ABSENT, CMV_SHIFT, CORD, DonorIndex, GenotypeColumn, LIVE, RH_SHIFT, SEX_SHIFT,
    STATUS_SHIFT, pair_hash,
};
use crate::model::{Abo, Cmv, CordCells, Locus, Sex, Status};
use crate::position::PositionInfo;

/// The layout's version: bump it whenever what is written changes.
const MAGIC: &[u8; 8] = b"BOAIIX01";

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("not an index snapshot of this layout (expected {expected:?})", expected = String::from_utf8_lossy(MAGIC))]
    Layout,
    #[error("the snapshot ends early (reading {0})")]
    Truncated(&'static str),
    #[error("the snapshot is inconsistent: {0}")]
    Inconsistent(String),
    #[error("locus {locus}: typing `{text}` does not expand with this IMGT/HLA release: {error}")]
    Typing {
        locus: Locus,
        text: String,
        error: TypingError,
    },
}

fn inconsistent(what: impl Into<String>) -> SnapshotError {
    SnapshotError::Inconsistent(what.into())
}

struct Writer {
    out: Vec<u8>,
}

impl Writer {
    fn len(&mut self, n: usize) {
        self.out.extend_from_slice(&(n as u64).to_le_bytes());
    }
    fn text(&mut self, s: &str) {
        self.len(s.len());
        self.out.extend_from_slice(s.as_bytes());
    }
    fn u32s(&mut self, values: impl ExactSizeIterator<Item = u32>) {
        self.len(values.len());
        self.out.reserve(values.len() * 4);
        values.for_each(|v| self.out.extend_from_slice(&v.to_le_bytes()));
    }
    fn u16s(&mut self, values: &[u16]) {
        self.len(values.len());
        self.out.reserve(values.len() * 2);
        values
            .iter()
            .for_each(|v| self.out.extend_from_slice(&v.to_le_bytes()));
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], SnapshotError> {
        if self.bytes.len() < n {
            return Err(SnapshotError::Truncated(what));
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }
    fn u8(&mut self, what: &'static str) -> Result<u8, SnapshotError> {
        Ok(self.take(1, what)?[0])
    }
    fn f64(&mut self, what: &'static str) -> Result<f64, SnapshotError> {
        let b = self.take(8, what)?;
        Ok(f64::from_le_bytes(b.try_into().expect("8 bytes")))
    }
    /// A length, checked against what is left (each item at least `item` bytes) so a
    /// damaged length cannot ask for a huge allocation.
    fn len(&mut self, item: usize, what: &'static str) -> Result<usize, SnapshotError> {
        let b = self.take(8, what)?;
        let n = u64::from_le_bytes(b.try_into().expect("8 bytes"));
        match usize::try_from(n) {
            Ok(n) if n.saturating_mul(item.max(1)) <= self.bytes.len() => Ok(n),
            _ => Err(SnapshotError::Truncated(what)),
        }
    }
    fn text(&mut self, what: &'static str) -> Result<String, SnapshotError> {
        let n = self.len(1, what)?;
        let b = self.take(n, what)?;
        String::from_utf8(b.to_vec()).map_err(|_| inconsistent(format!("{what}: not UTF-8")))
    }
    fn u32s(&mut self, what: &'static str) -> Result<Vec<u32>, SnapshotError> {
        let n = self.len(4, what)?;
        let b = self.take(n * 4, what)?;
        Ok(b.chunks_exact(4)
            .map(|c| u32::from_le_bytes(c.try_into().expect("4 bytes")))
            .collect())
    }
    fn u16s(&mut self, what: &'static str) -> Result<Vec<u16>, SnapshotError> {
        let n = self.len(2, what)?;
        let b = self.take(n * 2, what)?;
        Ok(b.chunks_exact(2)
            .map(|c| u16::from_le_bytes(c.try_into().expect("2 bytes")))
            .collect())
    }
    fn bytes(&mut self, what: &'static str) -> Result<Vec<u8>, SnapshotError> {
        let n = self.len(1, what)?;
        Ok(self.take(n, what)?.to_vec())
    }
    fn texts(&mut self, what: &'static str) -> Result<Vec<String>, SnapshotError> {
        let n = self.len(8, what)?;
        (0..n).map(|_| self.text(what)).collect()
    }
}

impl DonorIndex {
    /// The index as snapshot bytes (see the module's note).
    pub fn snapshot_bytes(&self) -> Vec<u8> {
        let rows = self.keys.len();
        let mut w = Writer {
            out: Vec::with_capacity(64 + rows * 24),
        };
        w.out.extend_from_slice(MAGIC);
        for table in &self.positions {
            // Id 0 is "untyped"; every other id has its info and its text.
            // The text each was interned by (a donor's own spelling), in id order.
            let mut texts = vec![""; table.infos.len()];
            for (text, &id) in &table.by_text {
                texts[id as usize] = text;
            }
            w.len(texts.len() - 1);
            texts.iter().skip(1).for_each(|t| w.text(t));
        }
        for table in &self.genotypes {
            w.u32s(
                table
                    .pairs
                    .iter()
                    .skip(1)
                    .flat_map(|p| *p)
                    .collect::<Vec<_>>()
                    .into_iter(),
            );
        }
        w.u32s(self.keys.iter().copied());
        w.u16s(&self.flags);
        w.u16s(&self.birth);
        w.u16s(&self.registry);
        w.len(self.population.len());
        w.out.extend_from_slice(&self.population);
        for column in self.columns.iter() {
            match column {
                GenotypeColumn::Narrow(c) => {
                    w.out.push(0);
                    w.u16s(c);
                }
                GenotypeColumn::Wide(c) => {
                    w.out.push(1);
                    w.u32s(c.iter().copied());
                }
            }
        }
        for list in [&self.registries, &self.populations] {
            w.len(list.len());
            list.iter().for_each(|s| w.text(s));
        }
        // Cord rows in row order, so the same index always writes the same bytes.
        let mut cords: Vec<_> = self.cords.iter().collect();
        cords.sort_by_key(|(row, _)| **row);
        w.len(cords.len());
        for (row, cells) in cords {
            w.out.extend_from_slice(&row.to_le_bytes());
            w.out.extend_from_slice(&cells.tnc_e7.to_le_bytes());
            w.out.extend_from_slice(&cells.cd34_e5.to_le_bytes());
        }
        w.u32s(self.free_rows.iter().copied());
        w.out.extend_from_slice(&self.candidate_share.to_le_bytes());
        w.out.push(self.postings.is_some() as u8);
        w.out
    }

    /// An index from snapshot bytes, each typing expanded again with `expander` (a typing
    /// the release does not know is an error naming it).
    pub fn from_snapshot_bytes(
        expander: std::sync::Arc<hla::Expander>,
        bytes: &[u8],
    ) -> Result<DonorIndex, SnapshotError> {
        let mut r = Reader { bytes };
        if r.take(MAGIC.len(), "layout").ok() != Some(&MAGIC[..]) {
            return Err(SnapshotError::Layout);
        }
        let mut index = DonorIndex::new(expander);
        for locus in Locus::ALL {
            let n = r.len(8, "typings")?;
            for i in 0..n {
                let text = r.text("typing")?;
                let table = &mut index.positions[locus.index()];
                if table.by_text.contains_key(text.as_str()) {
                    return Err(inconsistent(format!("locus {locus}: `{text}` twice")));
                }
                let info = AlleleList::parse(&text, Some(locus.name()))
                    .and_then(|list| PositionInfo::new(&index.expander, &list));
                let info = info.map_err(|error| SnapshotError::Typing {
                    locus,
                    text: text.clone(),
                    error,
                })?;
                let id = index.positions[locus.index()].push(&text, info);
                debug_assert_eq!(id as usize, i + 1);
            }
        }
        for l in 0..6 {
            let flat = r.u32s("genotypes")?;
            if flat.len() % 2 != 0 {
                return Err(inconsistent("a genotype pair cut in half"));
            }
            let positions = index.positions[l].infos.len() as u32;
            let table = &mut index.genotypes[l];
            for pair in flat.chunks_exact(2) {
                let pair = [pair[0], pair[1]];
                if pair.iter().any(|&p| p >= positions) || pair == [0, 0] {
                    return Err(inconsistent(format!(
                        "locus {}: genotype {pair:?} names a typing it lacks",
                        Locus::ALL[l]
                    )));
                }
                let id = table.pairs.len() as u32;
                let pairs = &table.pairs;
                if table
                    .by_pair
                    .find(pair_hash(pair), |&g| pairs[g as usize] == pair)
                    .is_some()
                {
                    return Err(inconsistent(format!("genotype {pair:?} twice")));
                }
                table.pairs.push(pair);
                table.counts.push(0);
                let pairs = &table.pairs;
                table
                    .by_pair
                    .insert_unique(pair_hash(pair), id, |&g| pair_hash(pairs[g as usize]));
            }
        }
        index.keys = r.u32s("keys")?;
        let rows = index.keys.len();
        index.flags = r.u16s("flags")?;
        index.birth = r.u16s("birth days")?;
        index.registry = r.u16s("registries")?;
        index.population = r.bytes("populations")?;
        if [
            index.flags.len(),
            index.birth.len(),
            index.registry.len(),
            index.population.len(),
        ] != [rows; 4]
        {
            return Err(inconsistent("columns of different lengths"));
        }
        for l in 0..6 {
            let column = match r.u8("column")? {
                0 => GenotypeColumn::Narrow(r.u16s("column")?),
                1 => GenotypeColumn::Wide(r.u32s("column")?),
                _ => return Err(inconsistent("a column of unknown width")),
            };
            if column.len() != rows {
                return Err(inconsistent("columns of different lengths"));
            }
            let counts = &mut index.genotypes[l].counts;
            for row in 0..rows {
                let g = column.get(row) as usize;
                match counts.get_mut(g) {
                    Some(c) => *c += 1,
                    None => return Err(inconsistent(format!("row {row}: genotype {g} unknown"))),
                }
            }
            index.columns[l] = column;
        }
        index.registries = r.texts("registry codes")?;
        index.populations = r.texts("population codes")?;
        if index.registries.is_empty() || index.populations.is_empty() {
            return Err(inconsistent("no default registry or population"));
        }
        let cords = r.len(12, "cords")?;
        for _ in 0..cords {
            let b = r.take(12, "cords")?;
            let word = |i: usize| <[u8; 4]>::try_from(&b[i..i + 4]).expect("4 bytes");
            let row = u32::from_le_bytes(word(0));
            let cells = CordCells {
                tnc_e7: f32::from_le_bytes(word(4)),
                cd34_e5: f32::from_le_bytes(word(8)),
            };
            if row as usize >= rows || index.cords.insert(row, cells).is_some() {
                return Err(inconsistent(format!("cord row {row}")));
            }
        }
        index.free_rows = r.u32s("free rows")?;
        let share = r.f64("candidate share")?;
        let postings = r.u8("postings")?;
        if !r.bytes.is_empty() {
            return Err(inconsistent("bytes after the end"));
        }
        index.set_candidate_share(share);
        check_rows(&mut index)?;
        if postings == 1 {
            index.build_postings();
        }
        Ok(index)
    }
}

/// Check each row's attributes and rebuild the key → row map and the live count.
fn check_rows(index: &mut DonorIndex) -> Result<(), SnapshotError> {
    let rows = index.keys.len();
    let mut free = vec![false; rows];
    for &row in &index.free_rows {
        match free.get_mut(row as usize) {
            Some(f) if !*f => *f = true,
            _ => return Err(inconsistent(format!("free row {row}"))),
        }
    }
    let known = |flags: u16, shift: u16, mask: u16, n: usize| ((flags >> shift) & mask) < n as u16;
    let mut max_key = None;
    for (row, &is_free) in free.iter().enumerate() {
        let f = index.flags[row];
        if f & LIVE == 0 {
            // A removed row: cleared flags and genotypes.
            if f != 0 || (0..6).any(|l| index.columns[l].get(row) != 0) || !is_free {
                return Err(inconsistent(format!(
                    "removed row {row} not cleared and free"
                )));
            }
            if index.cords.contains_key(&(row as u32)) {
                return Err(inconsistent(format!("removed row {row} has cord cells")));
            }
            continue;
        }
        let key = index.keys[row];
        let valid = f >> (CMV_SHIFT + 2) == 0
            && known(f, STATUS_SHIFT, 3, Status::ALL.len())
            && known(f, SEX_SHIFT, 3, Sex::ALL.len())
            && known(f, ABO_SHIFT, 7, Abo::ALL.len())
            && known(f, RH_SHIFT, 3, 3)
            && known(f, CMV_SHIFT, 3, Cmv::ALL.len())
            && (f & CORD != 0 || !index.cords.contains_key(&(row as u32)))
            && (index.registry[row] as usize) < index.registries.len()
            && (index.population[row] as usize) < index.populations.len();
        if !valid || is_free || key == ABSENT {
            return Err(inconsistent(format!("row {row} (donor {key})")));
        }
        max_key = max_key.max(Some(key));
    }
    index.row_of = vec![ABSENT; max_key.map_or(0, |k| k as usize + 1)];
    let mut live = 0;
    for row in 0..rows {
        if index.flags[row] & LIVE != 0 {
            let key = index.keys[row] as usize;
            if index.row_of[key] != ABSENT {
                return Err(inconsistent(format!("donor {key} in two rows")));
            }
            index.row_of[key] = row as u32;
            live += 1;
        }
    }
    index.live = live;
    Ok(())
}
