//! Sets of cells (day x kind of line item) and a virtual tag's value of each cell.

use super::NONE;

/// A set of cells, one bit each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CellSet {
    words: Vec<u64>,
    pub(super) len: usize,
}

impl CellSet {
    pub(super) fn none(len: usize) -> Self {
        CellSet {
            words: vec![0; len.div_ceil(64)],
            len,
        }
    }

    pub(super) fn all(len: usize) -> Self {
        let mut set = CellSet {
            words: vec![u64::MAX; len.div_ceil(64)],
            len,
        };
        if !len.is_multiple_of(64)
            && let Some(last) = set.words.last_mut()
        {
            *last = (1u64 << (len % 64)) - 1;
        }
        set
    }

    pub(super) fn from_fn(len: usize, mut f: impl FnMut(usize) -> bool) -> Self {
        let mut set = CellSet::none(len);
        for i in 0..len {
            if f(i) {
                set.insert(i);
            }
        }
        set
    }

    pub(super) fn insert(&mut self, i: usize) {
        if let Some(w) = self.words.get_mut(i / 64) {
            *w |= 1 << (i % 64);
        }
    }

    pub(crate) fn contains(&self, i: usize) -> bool {
        self.words
            .get(i / 64)
            .is_some_and(|w| w & (1 << (i % 64)) != 0)
    }

    pub(super) fn and(&mut self, other: &CellSet) {
        for (a, b) in self.words.iter_mut().zip(&other.words) {
            *a &= b;
        }
    }

    pub(super) fn or(&mut self, other: &CellSet) {
        for (a, b) in self.words.iter_mut().zip(&other.words) {
            *a |= b;
        }
    }

    pub(super) fn and_not(&mut self, other: &CellSet) {
        for (a, b) in self.words.iter_mut().zip(&other.words) {
            *a &= !b;
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.words.iter().all(|w| *w == 0)
    }

    pub(super) fn ones(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.len).filter(|&i| self.contains(i))
    }

    /// The bytes it holds.
    pub(crate) fn bytes(&self) -> usize {
        self.words.len() * 8
    }

    pub(super) fn word_count(&self) -> u64 {
        self.words.len() as u64
    }
}

/// A virtual tag evaluated over the cells of a range.
#[derive(Debug)]
pub(crate) struct TagValues {
    /// What it assigns (every string value of its rules and default, and the values taken
    /// from MegaBill keys), sorted; with [`UNTAGGED`] if some cell has no value.
    pub(crate) values: Vec<String>,
    /// Per cell, the index of its value; `NONE` if untagged.
    pub(super) cells: Vec<u32>,
    /// The index of [`UNTAGGED`] in `values`, or `NONE`.
    pub(super) untagged: u32,
}

impl TagValues {
    /// The value a cell is assigned.
    pub(super) fn get(&self, cell: usize) -> Option<&str> {
        match self.cells.get(cell).copied() {
            None | Some(NONE) => None,
            Some(i) => self.values.get(i as usize).map(String::as_str),
        }
    }

    /// The index in `values` of how a cell is answered ([`UNTAGGED`] if it has no value).
    pub(crate) fn label(&self, cell: usize) -> u32 {
        match self.cells.get(cell).copied() {
            None | Some(NONE) => self.untagged,
            Some(i) => i,
        }
    }

    /// Every cell's label (see [`label`](Self::label)).
    pub(crate) fn labels(&self) -> Vec<u32> {
        (0..self.cells.len()).map(|c| self.label(c)).collect()
    }
}
