//! Orthogonal Procrustes with scaling for 2-D layouts: the similarity transform (rotation or
//! reflection, uniform scale, translation) that best maps one layout onto another, and the
//! normalised residual that measures how much a layout moved beyond such a transform ("drift").
//!
//! The 2×2 SVD is done in closed form: the best rotation and the best reflection each maximise
//! a linear form `cos θ·p + sin θ·q`, whose maximum `√(p² + q²)` is one of the singular-value
//! sums `σ₁ ± σ₂`.

use ndarray::{Array2, ArrayView2};

use crate::analysis::{AnalysisError, AnalysisResult};

/// `aligned = scale · (moving − moving_mean) · rotation + target_mean`.
#[derive(Debug, Clone, PartialEq)]
pub struct Alignment {
    /// Row-vector convention: a point `p` (1×2) maps to `p · rotation`.
    pub rotation: [[f64; 2]; 2],
    pub scale: f64,
    pub moving_mean: [f64; 2],
    pub target_mean: [f64; 2],
    /// `‖target − aligned‖² / ‖target − target_mean‖²`: 0 for a pure similarity transform,
    /// 1 when nothing of the target's shape is explained (scipy's `procrustes` disparity).
    pub residual: f64,
}

impl Alignment {
    /// Applies the transform to every row of `points`.
    pub fn apply(&self, points: ArrayView2<f32>) -> Array2<f32> {
        let r = self.rotation;
        let mut out = Array2::zeros((points.nrows(), 2));
        for (src, mut dst) in points.rows().into_iter().zip(out.rows_mut()) {
            let x = src[0] as f64 - self.moving_mean[0];
            let y = src[1] as f64 - self.moving_mean[1];
            dst[0] = (self.scale * (x * r[0][0] + y * r[1][0]) + self.target_mean[0]) as f32;
            dst[1] = (self.scale * (x * r[0][1] + y * r[1][1]) + self.target_mean[1]) as f32;
        }
        out
    }
}

/// Aligns `moving` onto `target` (same members, same row order, N×2).
///
/// With `allow_reflection` false only proper rotations are considered (what keeps a live map
/// from flipping); the drift figure uses `true`, as scipy does.
pub fn procrustes(
    target: ArrayView2<f32>,
    moving: ArrayView2<f32>,
    allow_reflection: bool,
) -> AnalysisResult<Alignment> {
    if target.ncols() != 2 || moving.ncols() != 2 {
        return Err(AnalysisError::Invalid(format!(
            "Procrustes aligns 2-D layouts; got {} and {} columns",
            target.ncols(),
            moving.ncols()
        )));
    }
    if moving.nrows() != target.nrows() {
        return Err(AnalysisError::LengthMismatch {
            what: "layout to align",
            expected: target.nrows(),
            got: moving.nrows(),
        });
    }
    if target.nrows() < 2 {
        return Err(AnalysisError::Invalid(
            "Procrustes needs at least 2 points".into(),
        ));
    }
    let target_mean = column_means(target);
    let moving_mean = column_means(moving);

    // m = movingᶜᵀ · targetᶜ (2×2), plus the two centred sums of squares.
    let mut m = [[0.0f64; 2]; 2];
    let (mut target_ss, mut moving_ss) = (0.0f64, 0.0f64);
    for (t, v) in target.rows().into_iter().zip(moving.rows()) {
        let t = [t[0] as f64 - target_mean[0], t[1] as f64 - target_mean[1]];
        let v = [v[0] as f64 - moving_mean[0], v[1] as f64 - moving_mean[1]];
        for i in 0..2 {
            for j in 0..2 {
                m[i][j] += v[i] * t[j];
            }
        }
        target_ss += t[0] * t[0] + t[1] * t[1];
        moving_ss += v[0] * v[0] + v[1] * v[1];
    }
    let usable = |ss: f64| ss > 0.0 && ss.is_finite();
    if !(usable(target_ss) && usable(moving_ss)) {
        return Err(AnalysisError::Invalid(
            "Procrustes needs layouts that are finite and not collapsed to one point".into(),
        ));
    }

    // trace(Rᵀ m) for R = [[c, −s], [s, c]] is c·(m00 + m11) + s·(m10 − m01).
    let (rot_p, rot_q) = (m[0][0] + m[1][1], m[1][0] - m[0][1]);
    // For the reflection F = [[c, s], [s, −c]] it is c·(m00 − m11) + s·(m01 + m10).
    let (ref_p, ref_q) = (m[0][0] - m[1][1], m[0][1] + m[1][0]);
    let rot_trace = rot_p.hypot(rot_q);
    let ref_trace = ref_p.hypot(ref_q);
    let (rotation, trace) = if allow_reflection && ref_trace > rot_trace {
        let theta = ref_q.atan2(ref_p);
        let (s, c) = theta.sin_cos();
        ([[c, s], [s, -c]], ref_trace)
    } else {
        let theta = rot_q.atan2(rot_p);
        let (s, c) = theta.sin_cos();
        ([[c, -s], [s, c]], rot_trace)
    };
    let scale = trace / moving_ss;
    let residual = (1.0 - trace * trace / (target_ss * moving_ss)).max(0.0);
    Ok(Alignment {
        rotation,
        scale,
        moving_mean,
        target_mean,
        residual,
    })
}

fn column_means(points: ArrayView2<f32>) -> [f64; 2] {
    let n = points.nrows() as f64;
    let mut sum = [0.0f64; 2];
    for row in points.rows() {
        sum[0] += row[0] as f64;
        sum[1] += row[1] as f64;
    }
    [sum[0] / n, sum[1] / n]
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    fn transformed(points: &Array2<f32>, angle: f64, scale: f64, flip: bool) -> Array2<f32> {
        let (s, c) = angle.sin_cos();
        let mut out = points.clone();
        for mut row in out.rows_mut() {
            let x = row[0] as f64;
            let y = if flip { -row[1] as f64 } else { row[1] as f64 };
            row[0] = (scale * (c * x - s * y) + 3.0) as f32;
            row[1] = (scale * (s * x + c * y) - 1.5) as f32;
        }
        out
    }

    fn shape() -> Array2<f32> {
        array![[0.0, 0.0], [2.0, 0.5], [1.0, 3.0], [-1.0, 1.0], [0.5, -2.0]]
    }

    #[test]
    fn recovers_a_similarity_transform() {
        let target = shape();
        let moving = transformed(&target, 1.1, 0.4, false);
        let fit = procrustes(target.view(), moving.view(), false).unwrap();
        assert!(fit.residual < 1e-10, "residual {}", fit.residual);
        assert!((fit.scale - 2.5).abs() < 1e-5, "scale {}", fit.scale);
        let back = fit.apply(moving.view());
        for (a, b) in back.iter().zip(target.iter()) {
            assert!((a - b).abs() < 1e-4);
        }
    }

    #[test]
    fn reflection_only_when_allowed() {
        let target = shape();
        let mirrored = transformed(&target, 0.3, 1.0, true);
        let with = procrustes(target.view(), mirrored.view(), true).unwrap();
        let without = procrustes(target.view(), mirrored.view(), false).unwrap();
        assert!(with.residual < 1e-10);
        assert!(without.residual > 0.1);
    }

    #[test]
    fn unrelated_layouts_have_large_residual() {
        let target = shape();
        let other = array![[1.0, 0.0], [0.0, 0.0], [0.0, 1.0], [3.0, 3.0], [0.0, -1.0]];
        let fit = procrustes(target.view(), other.view(), true).unwrap();
        assert!(fit.residual > 0.2 && fit.residual <= 1.0);
    }
}
