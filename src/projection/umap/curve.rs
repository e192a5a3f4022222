//! The low-dimensional similarity of UMAP, `1 / (1 + a·d^(2b))`, fitted to the offset
//! exponential that `min_dist` and `spread` describe, as umap-learn's `find_ab_params`
//! (scipy's `curve_fit`, i.e. Levenberg–Marquardt least squares on 300 points of
//! `[0, 3·spread]`). Written here because it is twenty lines and no crate we use exposes it
//! with umap-learn's exact definition.

/// The fitted curve parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Curve {
    pub a: f32,
    pub b: f32,
}

const SAMPLES: usize = 300;
const MAX_ITERATIONS: usize = 500;

impl Curve {
    /// Least-squares fit of `1 / (1 + a·x^(2b))` to 1 below `min_dist` and
    /// `exp(−(x − min_dist) / spread)` above, on `x ∈ [0, 3·spread]`, from `a = b = 1`
    /// (scipy's default start).
    pub fn fit(min_dist: f32, spread: f32) -> Self {
        let (min_dist, spread) = (f64::from(min_dist), f64::from(spread));
        let points: Vec<(f64, f64)> = (0..SAMPLES)
            .map(|i| {
                let x = 3.0 * spread * i as f64 / (SAMPLES - 1) as f64;
                let y = if x < min_dist {
                    1.0
                } else {
                    (-(x - min_dist) / spread).exp()
                };
                (x, y)
            })
            .collect();
        let [a, b] = levenberg_marquardt(&points, [1.0, 1.0]);
        Self {
            a: a as f32,
            b: b as f32,
        }
    }
}

/// Model value and its gradient in (a, b) at `x`.
fn model(x: f64, [a, b]: [f64; 2]) -> (f64, [f64; 2]) {
    if x <= 0.0 {
        return (1.0, [0.0, 0.0]);
    }
    let u = x.powf(2.0 * b);
    let denom = 1.0 + a * u;
    let f = 1.0 / denom;
    let common = -1.0 / (denom * denom);
    (f, [common * u, common * a * u * 2.0 * x.ln()])
}

fn sum_of_squares(points: &[(f64, f64)], params: [f64; 2]) -> f64 {
    points
        .iter()
        .map(|&(x, y)| {
            let r = model(x, params).0 - y;
            r * r
        })
        .sum()
}

/// Two-parameter Levenberg–Marquardt with Marquardt's diagonal scaling.
fn levenberg_marquardt(points: &[(f64, f64)], start: [f64; 2]) -> [f64; 2] {
    let mut params = start;
    let mut cost = sum_of_squares(points, params);
    let mut damping = 1e-3;
    for _ in 0..MAX_ITERATIONS {
        // Normal equations JᵀJ δ = −Jᵀr.
        let (mut jtj, mut jtr) = ([[0.0f64; 2]; 2], [0.0f64; 2]);
        for &(x, y) in points {
            let (f, grad) = model(x, params);
            let r = f - y;
            for i in 0..2 {
                jtr[i] += grad[i] * r;
                for j in 0..2 {
                    jtj[i][j] += grad[i] * grad[j];
                }
            }
        }
        let mut improved = false;
        while damping < 1e12 {
            let m = [
                [jtj[0][0] * (1.0 + damping), jtj[0][1]],
                [jtj[1][0], jtj[1][1] * (1.0 + damping)],
            ];
            let det = m[0][0] * m[1][1] - m[0][1] * m[1][0];
            if det.abs() < f64::MIN_POSITIVE {
                damping *= 10.0;
                continue;
            }
            let step = [
                -(m[1][1] * jtr[0] - m[0][1] * jtr[1]) / det,
                -(m[0][0] * jtr[1] - m[1][0] * jtr[0]) / det,
            ];
            let candidate = [params[0] + step[0], params[1] + step[1]];
            let candidate_cost = sum_of_squares(points, candidate);
            if candidate_cost.is_finite() && candidate_cost <= cost {
                let converged = (cost - candidate_cost) <= 1e-15 * cost.max(1e-300)
                    && step[0].abs() <= 1e-12 * params[0].abs().max(1e-12)
                    && step[1].abs() <= 1e-12 * params[1].abs().max(1e-12);
                params = candidate;
                cost = candidate_cost;
                damping = (damping / 10.0).max(1e-12);
                improved = !converged;
                break;
            }
            damping *= 10.0;
        }
        if !improved {
            break;
        }
    }
    params
}

#[cfg(test)]
mod tests {
    use super::*;

    /// umap-learn 0.5.12's `find_ab_params(spread, min_dist)`.
    const UMAP_LEARN: [(f32, f32, f64, f64); 8] = [
        (1.0, 0.1, 1.5769434602697652, 0.8950608778515733),
        (1.0, 0.0, 1.93280839734315, 0.7904949732233831),
        (1.0, 0.5, 0.5830300203414425, 1.3341669924314914),
        (1.0, 0.001, 1.929073395935085, 0.7915045334274393),
        (2.0, 0.1, 0.5446605399418663, 0.8420554268341789),
        (0.5, 0.25, 3.70629020242107, 1.3341672468456258),
        (3.0, 1.0, 0.07307862412012055, 1.1488894370813194),
        (1.0, 0.99, 0.11930529992407873, 1.9163904168802517),
    ];

    #[test]
    fn matches_umap_learn_find_ab_params() {
        for (spread, min_dist, a, b) in UMAP_LEARN {
            let curve = Curve::fit(min_dist, spread);
            let rel = |got: f32, want: f64| (f64::from(got) - want).abs() / want;
            assert!(
                rel(curve.a, a) < 1e-4 && rel(curve.b, b) < 1e-4,
                "spread {spread}, min_dist {min_dist}: got a {} b {}, umap-learn a {a} b {b}",
                curve.a,
                curve.b
            );
        }
    }
}
