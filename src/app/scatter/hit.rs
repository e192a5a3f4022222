//! Brush hit tests in data space: which points lie inside a rectangle or a lasso polygon.

use rayon::prelude::*;

/// Points per rayon task; small enough to split 135K points over the cores, large enough that
/// scheduling costs nothing.
const CHUNK_POINTS: usize = 8192;
/// Upper bound on the lasso's horizontal bands (a lasso has at most a few thousand vertices).
const MAX_BANDS: usize = 1024;

/// Indices of the points inside the axis-aligned rectangle spanned by two corners (inclusive).
pub fn points_in_rect(positions: &[[f32; 2]], a: [f32; 2], b: [f32; 2]) -> Vec<usize> {
    let (x0, x1) = (a[0].min(b[0]), a[0].max(b[0]));
    let (y0, y1) = (a[1].min(b[1]), a[1].max(b[1]));
    par_filter(positions, |p| {
        p[0] >= x0 && p[0] <= x1 && p[1] >= y0 && p[1] <= y1
    })
}

/// Indices of the points inside the closed polygon `lasso` by the even-odd rule.
pub fn points_in_lasso(positions: &[[f32; 2]], lasso: &[[f32; 2]]) -> Vec<usize> {
    match BandedPolygon::new(lasso) {
        Some(polygon) => par_filter(positions, |p| polygon.contains(p)),
        None => Vec::new(),
    }
}

fn par_filter(positions: &[[f32; 2]], inside: impl Fn([f32; 2]) -> bool + Sync) -> Vec<usize> {
    positions
        .par_chunks(CHUNK_POINTS)
        .enumerate()
        .flat_map_iter(|(chunk, points)| {
            let base = chunk * CHUNK_POINTS;
            let inside = &inside;
            points
                .iter()
                .enumerate()
                .filter(move |(_, p)| inside(**p))
                .map(move |(i, _)| base + i)
        })
        .collect()
}

/// Whether the edge from `a` to `b` crosses the horizontal ray going right from `p`: the
/// classic even-odd test, shared verbatim by the banded test and the reference.
#[inline]
fn crosses(a: [f32; 2], b: [f32; 2], p: [f32; 2]) -> bool {
    (a[1] > p[1]) != (b[1] > p[1]) && p[0] < (b[0] - a[0]) * (p[1] - a[1]) / (b[1] - a[1]) + a[0]
}

/// A polygon with its edges bucketed into horizontal bands, so a point only tests the few
/// edges whose y-range overlaps its band (exactly the same crossings as testing all edges,
/// since an edge can only cross a ray at a y inside its own y-range).
struct BandedPolygon<'a> {
    vertices: &'a [[f32; 2]],
    min: [f32; 2],
    max: [f32; 2],
    band_height: f32,
    /// Edge `i` runs from vertex `i` to vertex `i + 1` (wrapping); band `k` holds edges
    /// `band_edges[band_start[k]..band_start[k + 1]]`.
    band_start: Vec<u32>,
    band_edges: Vec<u32>,
}

impl<'a> BandedPolygon<'a> {
    fn new(vertices: &'a [[f32; 2]]) -> Option<Self> {
        if vertices.len() < 3
            || vertices
                .iter()
                .any(|v| !(v[0].is_finite() && v[1].is_finite()))
        {
            return None;
        }
        let mut min = [f32::INFINITY; 2];
        let mut max = [f32::NEG_INFINITY; 2];
        for v in vertices {
            for axis in 0..2 {
                min[axis] = min[axis].min(v[axis]);
                max[axis] = max[axis].max(v[axis]);
            }
        }
        let bands = vertices.len().clamp(1, MAX_BANDS);
        let band_height = ((max[1] - min[1]) / bands as f32).max(f32::MIN_POSITIVE);
        let mut polygon = Self {
            vertices,
            min,
            max,
            band_height,
            band_start: vec![0; bands + 1],
            band_edges: Vec::new(),
        };
        let edge_bands = |i: usize| {
            let (a, b) = (vertices[i], vertices[(i + 1) % vertices.len()]);
            polygon.band_of(a[1].min(b[1]))..=polygon.band_of(a[1].max(b[1]))
        };
        let ranges: Vec<_> = (0..vertices.len()).map(edge_bands).collect();
        for range in &ranges {
            for band in range.clone() {
                polygon.band_start[band + 1] += 1;
            }
        }
        for band in 0..bands {
            polygon.band_start[band + 1] += polygon.band_start[band];
        }
        polygon.band_edges = vec![0; polygon.band_start[bands] as usize];
        let mut next = polygon.band_start.clone();
        for (edge, range) in ranges.into_iter().enumerate() {
            for band in range {
                polygon.band_edges[next[band] as usize] = edge as u32;
                next[band] += 1;
            }
        }
        Some(polygon)
    }

    /// Monotone in `y`, which is what makes the bucketing exact.
    #[inline]
    fn band_of(&self, y: f32) -> usize {
        let bands = self.band_start.len() - 1;
        (((y - self.min[1]) / self.band_height).max(0.0) as usize).min(bands - 1)
    }

    #[inline]
    fn contains(&self, p: [f32; 2]) -> bool {
        if !(p[0] >= self.min[0]
            && p[0] <= self.max[0]
            && p[1] >= self.min[1]
            && p[1] <= self.max[1])
        {
            return false;
        }
        let band = self.band_of(p[1]);
        let edges =
            &self.band_edges[self.band_start[band] as usize..self.band_start[band + 1] as usize];
        let n = self.vertices.len();
        let mut inside = false;
        for &edge in edges {
            let edge = edge as usize;
            if crosses(self.vertices[edge], self.vertices[(edge + 1) % n], p) {
                inside = !inside;
            }
        }
        inside
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// The textbook even-odd test over every edge, the reference for the banded one.
    fn brute_in_polygon(polygon: &[[f32; 2]], p: [f32; 2]) -> bool {
        let n = polygon.len();
        (0..n)
            .filter(|&i| crosses(polygon[i], polygon[(i + 1) % n], p))
            .count()
            % 2
            == 1
    }

    fn random_points(rng: &mut ChaCha8Rng, n: usize) -> Vec<[f32; 2]> {
        (0..n)
            .map(|_| [rng.random_range(-10.0..10.0), rng.random_range(-10.0..10.0)])
            .collect()
    }

    #[test]
    fn rectangle_matches_brute_force() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut positions = random_points(&mut rng, 20_000);
        positions.push([f32::NAN, 0.0]);
        // Corners given in either order.
        let (a, b) = ([3.0, -2.5], [-4.0, 6.0]);
        let expected: Vec<usize> = positions
            .iter()
            .enumerate()
            .filter(|(_, p)| p[0] >= -4.0 && p[0] <= 3.0 && p[1] >= -2.5 && p[1] <= 6.0)
            .map(|(i, _)| i)
            .collect();
        assert!(expected.len() > 1000);
        assert_eq!(points_in_rect(&positions, a, b), expected);
    }

    #[test]
    fn lasso_matches_brute_force_even_odd() {
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let positions = random_points(&mut rng, 20_000);
        // A concave star, a self-intersecting bow tie, and a wobbly hand-drawn-like loop.
        let star: Vec<[f32; 2]> = (0..14)
            .map(|k| {
                let angle = k as f32 * std::f32::consts::TAU / 14.0;
                let r = if k % 2 == 0 { 8.0 } else { 2.5 };
                [r * angle.cos(), r * angle.sin()]
            })
            .collect();
        let bow_tie = vec![[-8.0, -6.0], [8.0, 6.0], [8.0, -6.0], [-8.0, 6.0]];
        let wobbly: Vec<[f32; 2]> = (0..600)
            .map(|k| {
                let angle = k as f32 * std::f32::consts::TAU / 600.0;
                let r = 6.0 + 2.5 * (5.0 * angle).sin() + rng.random_range(-0.3..0.3);
                [r * angle.cos(), r * angle.sin()]
            })
            .collect();
        for lasso in [&star, &bow_tie, &wobbly] {
            let expected: Vec<usize> = (0..positions.len())
                .filter(|&i| brute_in_polygon(lasso, positions[i]))
                .collect();
            assert!(expected.len() > 500 && expected.len() < positions.len() - 500);
            assert_eq!(points_in_lasso(&positions, lasso), expected);
        }
        // The concave star keeps its tips and excludes the notches between them.
        let notch = std::f32::consts::TAU / 14.0;
        let probes = [
            [0.0, 0.0],
            [7.5, 0.0],
            [5.0 * notch.cos(), 5.0 * notch.sin()],
        ];
        assert_eq!(points_in_lasso(&probes, &star), vec![0, 1]);
    }

    #[test]
    fn degenerate_lassos_select_nothing() {
        let positions = vec![[0.0, 0.0], [1.0, 1.0]];
        assert!(points_in_lasso(&positions, &[]).is_empty());
        assert!(points_in_lasso(&positions, &[[0.0, 0.0], [2.0, 2.0]]).is_empty());
        assert!(
            points_in_lasso(&positions, &[[-1.0, -1.0], [f32::NAN, 1.0], [1.0, -1.0]]).is_empty()
        );
        // A flat (zero-height) lasso encloses no area.
        assert!(points_in_lasso(&positions, &[[-1.0, 0.0], [1.0, 0.0], [2.0, 0.0]]).is_empty());
    }
}
