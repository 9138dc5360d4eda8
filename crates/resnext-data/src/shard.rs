//! Which part of the data a process takes in data-parallel training: balanced contiguous shares,
//! so that the processes' parts of a global batch, in rank order, are the global batch itself.

use std::ops::Range;

/// Rank `rank` of `ranks`; one process is `Shard::whole()`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub rank: usize,
    pub ranks: usize,
}

impl Default for Shard {
    fn default() -> Self {
        Self::whole()
    }
}

impl Shard {
    pub fn whole() -> Self {
        Self { rank: 0, ranks: 1 }
    }

    /// This rank's share of `0..len`: `len·r/N .. len·(r+1)/N`. The shares differ in size by at
    /// most one and cover `0..len` once, in rank order.
    pub fn range(&self, len: usize) -> Range<usize> {
        let n = self.ranks.max(1);
        len * self.rank / n..len * (self.rank + 1) / n
    }

    /// The smallest share of `len` items any rank gets.
    pub fn min_share(&self, len: usize) -> usize {
        len / self.ranks.max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_cover_each_item_once_in_order() {
        for ranks in 1..6 {
            for len in 0..40 {
                let mut all = Vec::new();
                for rank in 0..ranks {
                    let r = Shard { rank, ranks }.range(len);
                    assert!(r.len() + 1 >= len / ranks && r.len() <= len.div_ceil(ranks));
                    assert!(r.len() >= Shard { rank, ranks }.min_share(len));
                    all.extend(r);
                }
                assert_eq!(all, (0..len).collect::<Vec<_>>(), "{len} over {ranks}");
            }
        }
    }
}
