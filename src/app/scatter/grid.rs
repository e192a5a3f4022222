//! Uniform-grid spatial index over the data positions, for the hovered (nearest) point.

use super::view::data_bounds;

/// Points per cell the grid aims for: a hover query then reads a handful of cells.
const POINTS_PER_CELL: f32 = 2.0;
/// Cap on cells per side, so a degenerate spread cannot make the cell table huge.
const MAX_CELLS_PER_SIDE: usize = 1024;

/// Point indices bucketed by grid cell (compressed rows: `cell_start[c]..cell_start[c + 1]`
/// indexes `indices`). Non-finite positions are left out, so they are never hovered.
#[derive(Debug, Clone, Default)]
pub struct SpatialGrid {
    origin: [f32; 2],
    cell_size: f32,
    cols: usize,
    rows: usize,
    cell_start: Vec<u32>,
    indices: Vec<u32>,
}

impl SpatialGrid {
    pub fn build(positions: &[[f32; 2]]) -> Self {
        let Some(bounds) = data_bounds(positions) else {
            return Self::default();
        };
        let finite = positions.iter().filter(|p| is_finite(p)).count();
        let area = (bounds.width() * bounds.height()).max(f32::MIN_POSITIVE);
        let longest = bounds.width().max(bounds.height());
        // A line has (almost) no area: then cells are sized along the longer side.
        let mut cell_size = (area * POINTS_PER_CELL / finite as f32)
            .sqrt()
            .max(longest / MAX_CELLS_PER_SIDE as f32);
        if !(cell_size.is_finite() && cell_size > 0.0) {
            cell_size = 1.0; // all points identical
        }
        let side = |extent: f32| ((extent / cell_size) as usize + 1).min(MAX_CELLS_PER_SIDE);
        let (cols, rows) = (side(bounds.width()), side(bounds.height()));
        let mut grid = Self {
            origin: [bounds.min.x, bounds.min.y],
            cell_size,
            cols,
            rows,
            cell_start: vec![0; cols * rows + 1],
            indices: vec![0; finite],
        };
        // Counting sort by cell: counts, prefix sums, then scatter (keeps index order per cell).
        let cells: Vec<u32> = positions
            .iter()
            .map(|p| {
                if is_finite(p) {
                    grid.cell_of(*p) as u32
                } else {
                    u32::MAX
                }
            })
            .collect();
        for &cell in cells.iter().filter(|&&c| c != u32::MAX) {
            grid.cell_start[cell as usize + 1] += 1;
        }
        for c in 0..cols * rows {
            grid.cell_start[c + 1] += grid.cell_start[c];
        }
        let mut next = grid.cell_start.clone();
        for (i, &cell) in cells.iter().enumerate().filter(|(_, c)| **c != u32::MAX) {
            let slot = &mut next[cell as usize];
            grid.indices[*slot as usize] = i as u32;
            *slot += 1;
        }
        grid
    }

    fn col_row(&self, p: [f32; 2]) -> (usize, usize) {
        let clamp = |v: f32, n: usize| (v.max(0.0) as usize).min(n - 1);
        (
            clamp((p[0] - self.origin[0]) / self.cell_size, self.cols),
            clamp((p[1] - self.origin[1]) / self.cell_size, self.rows),
        )
    }

    fn cell_of(&self, p: [f32; 2]) -> usize {
        let (col, row) = self.col_row(p);
        row * self.cols + col
    }

    /// The point nearest to `query` within `max_dist` (inclusive); ties go to the lower index.
    /// `positions` must be the slice the grid was built from.
    pub fn nearest(&self, positions: &[[f32; 2]], query: [f32; 2], max_dist: f32) -> Option<usize> {
        if self.indices.is_empty() || !is_finite(&query) || max_dist.is_nan() || max_dist < 0.0 {
            return None;
        }
        // A hair of slack so rounding at a cell border cannot drop a point at exactly max_dist.
        let reach = max_dist * (1.0 + 1e-4) + f32::EPSILON * query[0].abs().max(query[1].abs());
        let (c0, r0) = self.col_row([query[0] - reach, query[1] - reach]);
        let (c1, r1) = self.col_row([query[0] + reach, query[1] + reach]);
        let max_dist_sq = max_dist * max_dist;
        let mut best: Option<(f32, u32)> = None;
        let mut consider = |i: u32| {
            let p = positions[i as usize];
            let d_sq = (p[0] - query[0]).powi(2) + (p[1] - query[1]).powi(2);
            if d_sq <= max_dist_sq
                && best.is_none_or(|(bd, bi)| d_sq < bd || (d_sq == bd && i < bi))
            {
                best = Some((d_sq, i));
            }
        };
        for row in r0..=r1 {
            let cells = row * self.cols + c0..=row * self.cols + c1;
            let span =
                self.cell_start[*cells.start()] as usize..self.cell_start[cells.end() + 1] as usize;
            // Cells of one row are contiguous in `indices`.
            for &i in &self.indices[span] {
                consider(i);
            }
        }
        best.map(|(_, i)| i as usize)
    }
}

fn is_finite(p: &[f32; 2]) -> bool {
    p[0].is_finite() && p[1].is_finite()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn brute_nearest(positions: &[[f32; 2]], q: [f32; 2], max_dist: f32) -> Option<usize> {
        let mut best: Option<(f32, usize)> = None;
        for (i, p) in positions.iter().enumerate() {
            let d_sq = (p[0] - q[0]).powi(2) + (p[1] - q[1]).powi(2);
            if d_sq <= max_dist * max_dist && best.is_none_or(|(bd, _)| d_sq < bd) {
                best = Some((d_sq, i));
            }
        }
        best.map(|(_, i)| i)
    }

    #[test]
    fn nearest_matches_brute_force() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        // Two dense clusters and a sparse background, like a UMAP.
        let mut positions: Vec<[f32; 2]> = (0..6000)
            .map(|i| {
                let (cx, cy, s) = match i % 3 {
                    0 => (-5.0, 2.0, 0.5),
                    1 => (4.0, -1.0, 1.0),
                    _ => (0.0, 0.0, 8.0),
                };
                [cx + rng.random_range(-s..s), cy + rng.random_range(-s..s)]
            })
            .collect();
        positions.push([f32::NAN, 0.0]);
        let grid = SpatialGrid::build(&positions);
        let mut hits = 0;
        for _ in 0..2000 {
            let q = [rng.random_range(-10.0..10.0), rng.random_range(-10.0..10.0)];
            let max_dist = rng.random_range(0.0..0.6);
            let expected = brute_nearest(&positions, q, max_dist);
            assert_eq!(
                grid.nearest(&positions, q, max_dist),
                expected,
                "query {q:?} r {max_dist}"
            );
            hits += usize::from(expected.is_some());
        }
        // The queries must exercise both outcomes to mean anything.
        assert!(hits > 200 && hits < 1900, "{hits}");
        // A radius covering everything still works (and clamps to the grid).
        assert_eq!(
            grid.nearest(&positions, [100.0, 100.0], 1e3),
            brute_nearest(&positions, [100.0, 100.0], 1e3)
        );
    }

    #[test]
    fn degenerate_inputs() {
        assert_eq!(SpatialGrid::build(&[]).nearest(&[], [0.0, 0.0], 1.0), None);
        let same = vec![[1.0, 1.0]; 10];
        assert_eq!(
            SpatialGrid::build(&same).nearest(&same, [1.1, 1.0], 0.5),
            Some(0)
        );
        let line: Vec<[f32; 2]> = (0..100).map(|i| [i as f32, 3.0]).collect();
        assert_eq!(
            SpatialGrid::build(&line).nearest(&line, [41.8, 3.2], 1.0),
            Some(42)
        );
    }
}
