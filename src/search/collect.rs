//! The collector: counts and ranks only the entries the caller may see, so pages are
//! full and counts are right whatever the permissions leave out.

use std::sync::Arc;
use tantivy::collector::{Collector, SegmentCollector};
use tantivy::columnar::Column;
use tantivy::{DocAddress, DocId, Score, SegmentOrdinal, SegmentReader};

use uuid::Uuid;

/// A matching entry, before the filter has seen it.
#[derive(Debug, Clone, Copy)]
pub struct Entry {
    pub document: Uuid,
    /// 0: a live draft.
    pub version_id: i64,
    pub ranked: Ranked,
}

/// Decides which entries the caller may see. Called once per segment with all of the
/// segment's matches (so that it takes its locks once, not per hit).
pub trait Visible: Sync + Send + 'static {
    fn retain(&self, entries: &mut Vec<Entry>);
}

/// Ranked by score, then newest first.
#[derive(Debug, Clone, Copy)]
pub struct Ranked {
    pub score: Score,
    pub created_ms: i64,
    pub address: DocAddress,
}

fn better(a: &Ranked, b: &Ranked) -> std::cmp::Ordering {
    b.score.total_cmp(&a.score).then(b.created_ms.cmp(&a.created_ms))
}

fn keep_best(v: &mut Vec<Ranked>, keep: usize) {
    if v.len() > keep && keep > 0 {
        v.select_nth_unstable_by(keep - 1, better);
    }
    v.truncate(keep);
    v.sort_unstable_by(better);
}

pub struct Hits<V: Visible> {
    pub visible: Arc<V>,
    /// The best `keep` entries are kept (the page and all before it).
    pub keep: usize,
}

pub struct SegmentHits<V: Visible> {
    visible: Arc<V>,
    keep: usize,
    segment: SegmentOrdinal,
    doc_hi: Column<u64>,
    doc_lo: Column<u64>,
    version_id: Column<i64>,
    created: Column<tantivy::DateTime>,
    entries: Vec<Entry>,
}

impl<V: Visible> Collector for Hits<V> {
    type Fruit = (usize, Vec<Ranked>);
    type Child = SegmentHits<V>;

    fn for_segment(&self, segment: SegmentOrdinal, reader: &SegmentReader) -> tantivy::Result<Self::Child> {
        let ff = reader.fast_fields();
        Ok(SegmentHits {
            visible: self.visible.clone(),
            keep: self.keep,
            segment,
            doc_hi: ff.u64("doc_hi")?,
            doc_lo: ff.u64("doc_lo")?,
            version_id: ff.i64("version_id")?,
            created: ff.date("created_at")?,
            entries: Vec::new(),
        })
    }

    fn requires_scoring(&self) -> bool {
        true
    }

    fn merge_fruits(&self, fruits: Vec<(usize, Vec<Ranked>)>) -> tantivy::Result<Self::Fruit> {
        let mut count = 0;
        let mut all = Vec::new();
        for (c, hits) in fruits {
            count += c;
            all.extend(hits);
        }
        keep_best(&mut all, self.keep);
        Ok((count, all))
    }
}

impl<V: Visible> SegmentCollector for SegmentHits<V> {
    type Fruit = (usize, Vec<Ranked>);

    fn collect(&mut self, doc: DocId, score: Score) {
        let (Some(hi), Some(lo), Some(version_id)) = (
            self.doc_hi.first(doc),
            self.doc_lo.first(doc),
            self.version_id.first(doc),
        ) else {
            return;
        };
        let created_ms = self.created.first(doc).map_or(0, |d| d.into_timestamp_millis());
        self.entries.push(Entry {
            document: Uuid::from_u64_pair(hi, lo),
            version_id,
            ranked: Ranked {
                score,
                created_ms,
                address: DocAddress::new(self.segment, doc),
            },
        });
    }

    fn harvest(mut self) -> Self::Fruit {
        self.visible.retain(&mut self.entries);
        let count = self.entries.len();
        let mut best: Vec<Ranked> = self.entries.into_iter().map(|e| e.ranked).collect();
        keep_best(&mut best, self.keep);
        (count, best)
    }
}
