//! Losses against hand-derived values and independent reference implementations.

use burn::tensor::{Device, Int, Tensor, TensorData};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sense::data::Shape;
use sense::nn::losses::{
    LossConfig, ReconstructionLoss, SsimConfig, Supervision, TotalLoss, contrastive_loss,
    kl_divergence, kl_weight, mse, mse_ssim, silhouette_exact, soft_silhouette_loss,
    soft_silhouette_score, ssim,
};
use sense::nn::{ModelConfig, ModelKind};

fn tensor2(values: &[f64], rows: usize, cols: usize, device: &Device) -> Tensor<2> {
    let values: Vec<f32> = values.iter().map(|&v| v as f32).collect();
    Tensor::from_data(TensorData::new(values, [rows, cols]), device)
}

fn one_hot(labels: &[usize], clusters: usize) -> Vec<f64> {
    labels
        .iter()
        .flat_map(|&l| (0..clusters).map(move |k| if k == l { 1.0 } else { 0.0 }))
        .collect()
}

fn scalar(t: Tensor<1>) -> f64 {
    t.into_scalar::<f32>() as f64
}

fn assert_close(actual: f64, expected: f64, tol: f64, what: &str) {
    assert!(
        (actual - expected).abs() <= tol,
        "{what}: got {actual}, expected {expected}"
    );
}

// ---------------------------------------------------------------- silhouette

/// 1-D points A = {0, 1}, B = {4, 6} (Rousseeuw's definition by hand):
/// s(0) = (5 − 1)/5, s(1) = (4 − 1)/4, s(4) = (3.5 − 2)/3.5, s(6) = (5.5 − 2)/5.5.
fn two_pairs_expected() -> f64 {
    (4.0 / 5.0 + 3.0 / 4.0 + 1.5 / 3.5 + 3.5 / 5.5) / 4.0
}

#[test]
fn exact_silhouette_hand_cases() {
    let expected = two_pairs_expected();
    let got = silhouette_exact(&[0.0, 1.0, 4.0, 6.0], 1, &[0, 0, 1, 1]).unwrap();
    assert_close(got, expected, 1e-12, "two pairs");

    // Singleton B = {5}: its member scores 0; s(0) = 0.8, s(1) = 0.75.
    let got = silhouette_exact(&[0.0, 1.0, 5.0], 1, &[3, 3, 9]).unwrap();
    assert_close(got, (0.8 + 0.75) / 3.0, 1e-12, "singleton");

    assert_eq!(silhouette_exact(&[0.0, 1.0], 1, &[2, 2]), None);
    assert_eq!(silhouette_exact(&[0.0, 1.0, 2.0], 2, &[0, 1]), None);
    assert_eq!(silhouette_exact(&[], 1, &[]), None);
}

#[test]
fn soft_silhouette_hand_cases() {
    let device = Device::flex();
    let z = tensor2(&[0.0, 1.0, 4.0, 6.0], 4, 1, &device);
    let p = tensor2(&one_hot(&[0, 0, 1, 1], 2), 4, 2, &device);
    let expected = two_pairs_expected();
    assert_close(
        scalar(soft_silhouette_score(z.clone(), p.clone())),
        expected,
        1e-6,
        "score",
    );
    assert_close(
        scalar(soft_silhouette_loss(z.clone(), p)),
        1.0 - expected,
        1e-6,
        "loss",
    );

    // A third, empty cluster column changes nothing (absent clusters are not in the min).
    let p3 = tensor2(&one_hot(&[0, 0, 1, 1], 3), 4, 3, &device);
    assert_close(scalar(soft_silhouette_score(z, p3)), expected, 1e-6, "K=3");

    // Confidence-weighted pseudo-label (weight 0.5 on the point at 1): a_k(i) becomes a
    // weighted mean and point i counts with its weight.
    //   i=0: a_A = 0.5·1/0.5 = 1, a_B = 5          → s = 0.8,             weight 1
    //   i=1: a_A = 1,             a_B = 4          → s = 0.75,            weight 0.5
    //   i=4: a_B = 2,  a_A = (4 + 0.5·3)/1.5       → s = (a_A − 2)/a_A,   weight 1
    //   i=6: a_B = 2,  a_A = (6 + 0.5·5)/1.5       → s = (a_A − 2)/a_A,   weight 1
    let a4 = (4.0 + 0.5 * 3.0) / 1.5;
    let a6 = (6.0 + 0.5 * 5.0) / 1.5;
    let expected = (0.8 + 0.5 * 0.75 + (a4 - 2.0) / a4 + (a6 - 2.0) / a6) / 4.0;
    let z = tensor2(&[0.0, 1.0, 4.0, 6.0], 4, 1, &device);
    let p = tensor2(&[1.0, 0.0, 0.5, 0.0, 0.0, 1.0, 0.0, 1.0], 4, 2, &device);
    assert_close(
        scalar(soft_silhouette_score(z, p)),
        expected,
        1e-6,
        "weighted",
    );
}

#[test]
fn soft_silhouette_matches_exact_on_random_points() {
    let device = Device::flex();
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    for trial in 0..6 {
        let n = 10 + 3 * trial;
        let dim = 2 + trial % 4;
        let clusters = 2 + trial % 3;
        let mut labels: Vec<usize> = (0..n).map(|_| rng.random_range(0..clusters)).collect();
        labels[0] = 0;
        labels[1] = 1;
        if trial == 3 {
            // A singleton cluster: its member's silhouette is 0 by convention.
            labels.iter_mut().for_each(|l| *l %= 2);
            labels[2] = clusters;
        }
        let k = labels.iter().max().unwrap() + 1;
        let points: Vec<f64> = labels
            .iter()
            .flat_map(|&l| {
                let centre = l as f64 * 1.5;
                (0..dim)
                    .map(|_| centre + rng.random_range(-1.0..1.0))
                    .collect::<Vec<_>>()
            })
            .collect();

        let exact = silhouette_exact(&points, dim, &labels).unwrap();
        let z = tensor2(&points, n, dim, &device);
        let p = tensor2(&one_hot(&labels, k), n, k, &device);
        let soft = scalar(soft_silhouette_score(z, p));
        assert_close(soft, exact, 1e-5, &format!("trial {trial}"));
    }
}

#[test]
fn soft_silhouette_needs_two_clusters() {
    let device = Device::flex();
    let z = tensor2(&[0.0, 1.0, 2.0], 3, 1, &device);
    let p = tensor2(&one_hot(&[1, 1, 1], 2), 3, 2, &device);
    let loss = scalar(soft_silhouette_loss(z, p));
    assert_eq!(loss, 0.0);

    let z = tensor2(&[0.5], 1, 1, &device);
    let p = tensor2(&[1.0, 0.0], 1, 2, &device);
    assert_eq!(scalar(soft_silhouette_loss(z, p)), 0.0);
}

#[test]
fn soft_silhouette_gradients_are_finite_with_duplicates() {
    let device = Device::flex().autodiff();
    // Rows 0 and 1 coincide within cluster A; row 2 coincides with row 3 across clusters.
    let z = tensor2(
        &[0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 3.0, 2.0],
        5,
        2,
        &device,
    )
    .require_grad();
    let p = tensor2(&one_hot(&[0, 0, 0, 1, 1], 2), 5, 2, &device);
    let loss = soft_silhouette_loss(z.clone(), p);
    let grads = loss.backward();
    let grad: Vec<f32> = z.grad(&grads).unwrap().try_into_vec_as().unwrap();
    assert!(grad.iter().all(|g| g.is_finite()), "{grad:?}");
    assert!(
        grad.iter().any(|g| *g != 0.0),
        "no gradient at all: {grad:?}"
    );

    // All points identical: every distance is √ε, still no NaN.
    let z = Tensor::<2>::zeros([4, 3], &device).require_grad();
    let p = tensor2(&one_hot(&[0, 1, 0, 1], 2), 4, 2, &device);
    let loss = soft_silhouette_loss(z.clone(), p);
    assert!(scalar(loss.clone()).is_finite());
    let grads = loss.backward();
    let grad: Vec<f32> = z.grad(&grads).unwrap().try_into_vec_as().unwrap();
    assert!(grad.iter().all(|g| g.is_finite()), "{grad:?}");
}

// --------------------------------------------------------------- contrastive

fn labels(values: &[i64], device: &Device) -> Tensor<1, Int> {
    Tensor::from_data(TensorData::new(values.to_vec(), [values.len()]), device)
}

#[test]
fn contrastive_hand_pairs() {
    let device = Device::flex();
    // z0 = (0,0) and z1 = (3,4) share class 0; z2 = (0,0.5) is class 1.
    // (0,1): same, D² = 25.  (0,2): different, D = 0.5 → (1 − 0.5)² = 0.25.
    // (1,2): different, D = √21.25 > margin → 0.  Mean over 3 pairs.
    let z = tensor2(&[0.0, 0.0, 3.0, 4.0, 0.0, 0.5], 3, 2, &device);
    let loss = scalar(contrastive_loss(
        z.clone(),
        labels(&[0, 0, 1], &device),
        1.0,
    ));
    assert_close(loss, (25.0 + 0.25) / 3.0, 1e-5, "margin 1");

    // Margin 5: (1,2) now contributes (5 − √21.25)², (0,2) (5 − 0.5)².
    let loss = scalar(contrastive_loss(z, labels(&[0, 0, 1], &device), 5.0));
    let expected = (25.0 + 4.5f64.powi(2) + (5.0 - 21.25f64.sqrt()).powi(2)) / 3.0;
    assert_close(loss, expected, 1e-4, "margin 5");

    let single = tensor2(&[1.0, 2.0], 1, 2, &device);
    assert_eq!(
        scalar(contrastive_loss(single, labels(&[0], &device), 1.0)),
        0.0
    );
}

#[test]
fn contrastive_gradients_are_finite_with_duplicates() {
    let device = Device::flex().autodiff();
    let z = tensor2(&[1.0, 1.0, 1.0, 1.0, 1.0, 1.0], 3, 2, &device).require_grad();
    let loss = contrastive_loss(z.clone(), labels(&[0, 1, 0], &device), 1.0);
    // Two negative pairs at distance √ε ≈ 0 → each (1 − 0)², one positive pair at 0.
    assert_close(scalar(loss.clone()), 2.0 / 3.0, 1e-5, "duplicates");
    let grads = loss.backward();
    let grad: Vec<f32> = z.grad(&grads).unwrap().try_into_vec_as().unwrap();
    assert!(grad.iter().all(|g| g.is_finite()), "{grad:?}");
}

// ------------------------------------------------------------------------ KL

#[test]
fn kl_against_hand_value() {
    let device = Device::flex();
    // Row 0: μ = (0.5, −1), log σ² = (0, ln 2):
    //   dim 0: −½(1 + 0 − 0.25 − 1) = 0.125
    //   dim 1: −½(1 + ln 2 − 1 − 2) = 1 − ½ ln 2
    // Row 1: μ = 0, log σ² = 0 → 0.  Batch mean of the row sums:
    let ln2 = std::f64::consts::LN_2;
    let dim0 = 0.125;
    let dim1 = 1.0 - 0.5 * ln2;
    let mu = tensor2(&[0.5, -1.0, 0.0, 0.0], 2, 2, &device);
    let logvar = tensor2(&[0.0, ln2, 0.0, 0.0], 2, 2, &device);
    let kl = scalar(kl_divergence(mu.clone(), logvar.clone(), 0.0));
    assert_close(kl, (dim0 + dim1) / 2.0, 1e-6, "plain KL");

    // Free bits λ = 0.3 per dimension on the batch means (0.0625 and 0.3267):
    let kl = scalar(kl_divergence(mu, logvar, 0.3));
    assert_close(kl, 0.3 + (dim1 / 2.0).max(0.3), 1e-6, "free bits");

    assert_close(
        kl_weight(4.0, 16, 28, 28),
        4.0 * 16.0 / 784.0,
        1e-15,
        "weight",
    );
}

// ---------------------------------------------------------------------- SSIM

/// Independent reference: direct (non-separable) Gaussian-weighted statistics in f64 over
/// every valid window position of a single-channel image.
fn ssim_reference(x: &[f64], y: &[f64], h: usize, w: usize, cfg: &SsimConfig) -> f64 {
    let win = cfg.window_px;
    let half = (win / 2) as f64;
    let mut g = vec![0.0; win * win];
    for i in 0..win {
        for j in 0..win {
            let (di, dj) = (i as f64 - half, j as f64 - half);
            g[i * win + j] = (-(di * di + dj * dj) / (2.0 * cfg.sigma_px.powi(2))).exp();
        }
    }
    let total: f64 = g.iter().sum();
    g.iter_mut().for_each(|v| *v /= total);
    let c1 = (cfg.k1 * cfg.data_range).powi(2);
    let c2 = (cfg.k2 * cfg.data_range).powi(2);
    let mut sum = 0.0;
    let mut count = 0;
    for r in 0..=h - win {
        for c in 0..=w - win {
            let (mut mx, mut my, mut sxx, mut syy, mut sxy) = (0.0, 0.0, 0.0, 0.0, 0.0);
            for i in 0..win {
                for j in 0..win {
                    let k = g[i * win + j];
                    let (a, b) = (x[(r + i) * w + c + j], y[(r + i) * w + c + j]);
                    mx += k * a;
                    my += k * b;
                    sxx += k * a * a;
                    syy += k * b * b;
                    sxy += k * a * b;
                }
            }
            let (vx, vy, cov) = (sxx - mx * mx, syy - my * my, sxy - mx * my);
            sum += ((2.0 * mx * my + c1) * (2.0 * cov + c2))
                / ((mx * mx + my * my + c1) * (vx + vy + c2));
            count += 1;
        }
    }
    sum / count as f64
}

fn image(values: &[f64], shape: [usize; 4], device: &Device) -> Tensor<4> {
    let values: Vec<f32> = values.iter().map(|&v| v as f32).collect();
    Tensor::from_data(TensorData::new(values, shape), device)
}

#[test]
fn ssim_identical_constant_and_reference() {
    let device = Device::flex();
    let cfg = SsimConfig::default();
    let mut rng = ChaCha8Rng::seed_from_u64(5);

    let noise: Vec<f64> = (0..2 * 3 * 20 * 20).map(|_| rng.random()).collect();
    let x = image(&noise, [2, 3, 20, 20], &device);
    assert_close(
        scalar(ssim(x.clone(), x.clone(), &cfg)),
        1.0,
        1e-5,
        "identical",
    );
    assert_close(
        scalar(mse_ssim(x.clone(), x, 0.5, &cfg)),
        0.0,
        1e-5,
        "mse+ssim",
    );

    // Constant images: σ = cov = 0, so SSIM = (2·m1·m2 + C1) / (m1² + m2² + C1).
    let (m1, m2) = (0.2, 0.7);
    let c1 = (cfg.k1 * cfg.data_range).powi(2);
    let expected = (2.0 * m1 * m2 + c1) / (m1 * m1 + m2 * m2 + c1);
    for side in [28, 7] {
        // 7 px is below the 11 px window: the window shrinks, the formula still holds.
        let a = image(&vec![m1; side * side], [1, 1, side, side], &device);
        let b = image(&vec![m2; side * side], [1, 1, side, side], &device);
        assert_close(scalar(ssim(a, b, &cfg)), expected, 1e-4, "constant");
    }

    // Random structured pair against the direct f64 implementation.
    let (h, w) = (18, 16);
    let xs: Vec<f64> = (0..h * w).map(|i| ((i % w) as f64 * 0.3).sin()).collect();
    let ys: Vec<f64> = xs
        .iter()
        .map(|v| 0.8 * v + 0.3 * rng.random::<f64>())
        .collect();
    let cfg = SsimConfig {
        data_range: 2.0,
        ..SsimConfig::default()
    };
    let expected = ssim_reference(&xs, &ys, h, w, &cfg);
    let got = scalar(ssim(
        image(&xs, [1, 1, h, w], &device),
        image(&ys, [1, 1, h, w], &device),
        &cfg,
    ));
    assert!(
        expected < 0.99,
        "reference pair too similar to test anything"
    );
    assert_close(got, expected, 1e-4, "reference");
}

#[test]
fn ssim_gradients_are_finite() {
    let device = Device::flex().autodiff();
    let x = Tensor::<4>::zeros([1, 2, 16, 16], &device).require_grad();
    let y = Tensor::<4>::ones([1, 2, 16, 16], &device);
    let loss = ReconstructionLoss::MseSsim {
        alpha: 0.5,
        ssim: SsimConfig::default(),
    }
    .compute(x.clone(), y);
    let grads = loss.backward();
    let grad: Vec<f32> = x.grad(&grads).unwrap().try_into_vec_as().unwrap();
    assert!(grad.iter().all(|g| g.is_finite()));
}

// --------------------------------------------------------------------- total

/// The terms come back unweighted; weighting them is the trainer's `Objective` (its unit
/// tests check the weighted total).
#[test]
fn total_loss_computes_the_terms() {
    let device = Device::flex();
    device.seed(9);
    let shape = Shape::new(1, 28, 28);
    let x = Tensor::<4>::random(
        [4, 1, 28, 28],
        burn::tensor::Distribution::Normal(0.0, 1.0),
        &device,
    );

    // VAE without supervision: reconstruction and KL.
    let vae = ModelConfig::new(ModelKind::Vae)
        .with_latent_dim(8)
        .with_beta(2.0);
    let model = vae.init(shape, &device).unwrap();
    let out = model.forward(x.clone());
    let loss = TotalLoss::new(LossConfig::default(), &vae);
    let terms = loss.compute(&out, x.clone(), None);
    let rec = scalar(mse(out.recon.clone(), x.clone()));
    assert_close(scalar(terms.reconstruction), rec, 1e-6, "reconstruction");
    let kl = scalar(terms.kl.unwrap());
    let expected_kl = scalar(kl_divergence(
        out.mu.clone().unwrap(),
        out.logvar.clone().unwrap(),
        0.0,
    ));
    assert!(kl > 0.0);
    assert_close(kl, expected_kl, 1e-6, "kl");
    assert!(terms.cluster.is_none() && terms.contrastive.is_none());

    // AE with two labelled rows per class among four: the label terms on those rows.
    let ae = ModelConfig::new(ModelKind::Ae).with_latent_dim(8);
    let model = ae.init(shape, &device).unwrap();
    let out = model.forward(x.clone());
    let loss = TotalLoss::new(LossConfig::default(), &ae);
    let supervision = Supervision {
        rows: labels(&[0, 1, 3], &device),
        assignments: tensor2(&one_hot(&[0, 1, 1], 2), 3, 2, &device),
    };
    let terms = loss.compute(&out, x.clone(), Some(&supervision));
    assert!(terms.kl.is_none());
    let z = out.latent.clone().select(0, supervision.rows.clone());
    let cluster = scalar(soft_silhouette_loss(
        z.clone(),
        supervision.assignments.clone(),
    ));
    let contrastive = scalar(contrastive_loss(z, labels(&[0, 1, 1], &device), 1.0));
    assert_close(scalar(terms.cluster.unwrap()), cluster, 1e-6, "cluster");
    assert_close(
        scalar(terms.contrastive.unwrap()),
        contrastive,
        1e-6,
        "contrastive",
    );
}

#[test]
fn loss_config_validation_and_serde() {
    assert!(LossConfig::default().validate().is_ok());
    let negative = LossConfig {
        lambda_cluster: -0.1,
        ..LossConfig::default()
    };
    assert!(negative.validate().is_err());
    let nan = LossConfig {
        free_bits_nats: f64::NAN,
        ..LossConfig::default()
    };
    assert!(nan.validate().is_err());
    let bad_alpha = LossConfig {
        reconstruction: ReconstructionLoss::MseSsim {
            alpha: 1.5,
            ssim: SsimConfig::default(),
        },
        ..LossConfig::default()
    };
    assert!(bad_alpha.validate().is_err());

    let parsed: LossConfig = serde_json::from_str(
        r#"{"reconstruction": {"kind": "mse-ssim", "alpha": 0.8}, "lambda_cluster": 0.5}"#,
    )
    .unwrap();
    assert_eq!(
        parsed.reconstruction,
        ReconstructionLoss::MseSsim {
            alpha: 0.8,
            ssim: SsimConfig::default()
        }
    );
    assert_eq!(parsed.lambda_cluster, 0.5);
    assert_eq!(parsed.lambda_contrastive, 0.2);
    assert!(parsed.validate().is_ok());
}
