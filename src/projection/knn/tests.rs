use std::sync::Mutex;
use std::sync::atomic::AtomicUsize;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::forest::{bf16, from_bf16};
use super::heaps::precedes;
use super::space::Kernel;
use super::*;

fn never() -> bool {
    false
}

fn quiet(_: usize, _: usize) {}

fn search(data: &[f32], dim: usize, k: usize, distance: Distance, seed: u64) -> KnnSearch<'_> {
    KnnSearch {
        data,
        n_rows: data.len() / dim,
        dim,
        k,
        distance,
        seed,
    }
}

fn gaussian(rng: &mut ChaCha8Rng) -> f32 {
    // Box–Muller.
    let u: f32 = rng.random::<f32>().max(f32::MIN_POSITIVE);
    let v: f32 = rng.random();
    (-2.0 * u.ln()).sqrt() * (std::f32::consts::TAU * v).cos()
}

fn uniform_rows(n: usize, dim: usize, seed: u64) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n * dim).map(|_| rng.random::<f32>()).collect()
}

/// `n` rows around `blobs` Gaussian centres, blob width and centre spread 1: overlapping,
/// so that the neighbours are not simply a blob's members (NN-descent's recall ≈ 0.995).
fn blobs(n: usize, dim: usize, blobs: usize, seed: u64) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let centres: Vec<f32> = (0..blobs * dim).map(|_| gaussian(&mut rng)).collect();
    (0..n)
        .flat_map(|i| {
            let c = (i * 7919) % blobs;
            (0..dim)
                .map(|d| centres[c * dim + d] + gaussian(&mut rng))
                .collect::<Vec<_>>()
        })
        .collect()
}

fn jitter(data: &[f32], scale: f32, seed: u64) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    data.iter()
        .map(|&x| x + scale * gaussian(&mut rng))
        .collect()
}

/// Brute force in f64: each row's k nearest (distance, index), ties by index.
fn reference(data: &[f32], dim: usize, k: usize, distance: Distance) -> Vec<Vec<(f64, u32)>> {
    let rows: Vec<&[f32]> = data.chunks_exact(dim).collect();
    let norm = |r: &[f32]| r.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>().sqrt();
    (0..rows.len())
        .map(|i| {
            let mut all: Vec<(f64, u32)> = (0..rows.len())
                .filter(|&j| j != i)
                .map(|j| {
                    let (a, b) = (rows[i], rows[j]);
                    let d = match distance {
                        Distance::Euclidean => a
                            .iter()
                            .zip(b)
                            .map(|(&x, &y)| (f64::from(x) - f64::from(y)).powi(2))
                            .sum::<f64>()
                            .sqrt(),
                        Distance::Cosine => {
                            let dot: f64 = a
                                .iter()
                                .zip(b)
                                .map(|(&x, &y)| f64::from(x) * f64::from(y))
                                .sum();
                            let norms = norm(a) * norm(b);
                            if norms > 0.0 {
                                (1.0 - dot / norms).max(0.0)
                            } else {
                                1.0
                            }
                        }
                    };
                    (d, j as u32)
                })
                .collect();
            all.sort_by(|x, y| x.0.total_cmp(&y.0).then(x.1.cmp(&y.1)));
            all.truncate(k);
            all
        })
        .collect()
}

/// Same neighbours as the reference, ranks swapped only between near-equal distances (f32
/// rounding), exact ties by index.
fn assert_matches(graph: &KnnGraph, truth: &[Vec<(f64, u32)>]) {
    const TOL: f64 = 1e-5;
    assert_eq!(graph.n_rows(), truth.len());
    for (row, want) in truth.iter().enumerate() {
        let (got_j, got_d) = (graph.neighbours(row), graph.distances(row));
        for (rank, &(d, j)) in want.iter().enumerate() {
            assert!(
                (f64::from(got_d[rank]) - d).abs() <= TOL * (1.0 + d),
                "row {row} rank {rank}: distance {} vs {d}",
                got_d[rank]
            );
            let near_tie = want
                .iter()
                .any(|&(e, i)| i != j && e != d && (e - d).abs() <= TOL * (1.0 + d));
            assert!(
                got_j[rank] == j || near_tie,
                "row {row} rank {rank}: {} vs {j}",
                got_j[rank]
            );
        }
    }
}

/// Row i's neighbours are valid: k distinct rows other than i, nearest first.
fn assert_valid(graph: &KnnGraph, n: usize, k: usize) {
    assert_eq!((graph.n_rows(), graph.k()), (n, k));
    for row in 0..n {
        let (idx, dist) = (graph.neighbours(row), graph.distances(row));
        for (slot, &j) in idx.iter().enumerate() {
            assert!((j as usize) < n && j as usize != row, "row {row}: {j}");
            assert!(!idx[..slot].contains(&j), "row {row}: {j} twice");
            assert!(dist[slot].is_finite() && dist[slot] >= 0.0);
        }
        assert!(
            dist.windows(2)
                .zip(idx.windows(2))
                .all(|(d, i)| precedes(d[0], i[0], d[1], i[1])),
            "row {row} not sorted: {idx:?} {dist:?}"
        );
    }
}

fn recall(graph: &KnnGraph, truth: &KnnGraph) -> f64 {
    let hits: usize = (0..truth.n_rows())
        .map(|row| {
            let want = truth.neighbours(row);
            graph
                .neighbours(row)
                .iter()
                .filter(|j| want.contains(j))
                .count()
        })
        .sum();
    hits as f64 / truth.indices().len() as f64
}

fn in_pool<T: Send>(threads: usize, run: impl FnOnce() -> T + Send) -> T {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap()
        .install(run)
}

#[test]
fn exact_matches_brute_force_with_duplicates() {
    let (dim, k) = (5, 7);
    let mut data = uniform_rows(80, dim, 1);
    // Rows 10..14 copy row 3, row 40 copies row 41: exact ties, broken by index.
    for copy in 10..14 {
        data.copy_within(3 * dim..4 * dim, copy * dim);
    }
    data.copy_within(41 * dim..42 * dim, 40 * dim);
    for distance in [Distance::Euclidean, Distance::Cosine] {
        let graph = search(&data, dim, k, distance, 0)
            .exact(&never, &quiet)
            .unwrap();
        assert_valid(&graph, 80, k);
        assert_matches(&graph, &reference(&data, dim, k, distance));
        assert_eq!(&graph.neighbours(3)[..4], &[10, 11, 12, 13]);
        assert_eq!(graph.neighbours(40)[0], 41);
        assert_eq!(graph.distances(3)[..4], [0.0; 4]);
    }
}

#[test]
fn smallest_sets_give_every_other_row() {
    let (dim, k) = (3, 6);
    for (n, data) in [
        (k + 1, uniform_rows(k + 1, dim, 2)),
        (k + 3, vec![0.5; (k + 3) * dim]),
    ] {
        let truth = reference(&data, dim, k, Distance::Euclidean);
        let s = search(&data, dim, k, Distance::Euclidean, 3);
        let exact = s.exact(&never, &quiet).unwrap();
        let descent = s.nn_descent(None, &never, &quiet).unwrap();
        assert_valid(&exact, n, k);
        assert_valid(&descent, n, k);
        assert_matches(&exact, &truth);
        if n == k + 1 {
            assert_eq!(descent, exact);
        }
    }
}

#[test]
fn nn_descent_finds_the_neighbours_of_clustered_data() {
    // Narrow rows take direct distances, wide ones (≥ GRAM_MIN_DIM) dot products.
    let cases = [
        (2000, 32, Distance::Euclidean),
        (800, 40, Distance::Cosine),
        (800, 16, Distance::Euclidean),
    ];
    for (n, dim, distance) in cases {
        let k = 14;
        let data = blobs(n, dim, 20, 4);
        let s = search(&data, dim, k, distance, 5);
        let exact = s.exact(&never, &quiet).unwrap();
        let (graph, stats) = s.nn_descent_with_stats(None, &never, &quiet).unwrap();
        assert_valid(&graph, n, k);
        let r = recall(&graph, &exact);
        assert!(r >= 0.98, "dim {dim}, {distance:?}: recall {r}");
        // Work bounded by n · k (a few dozen distances per neighbour found; lat: 38).
        assert!(
            stats.distance_evaluations < (50 * n * k) as u64,
            "{stats:?}"
        );
        assert!(stats.trees >= 5 && stats.iterations >= 1, "{stats:?}");
        // Distances as the exact search computes them, whatever the search used.
        for row in (0..n).step_by(7) {
            for (&j, &d) in graph.neighbours(row).iter().zip(graph.distances(row)) {
                if let Some(slot) = exact.neighbours(row).iter().position(|&e| e == j) {
                    assert_eq!(d, exact.distances(row)[slot], "row {row}");
                }
            }
        }
    }
}

#[test]
fn duplicate_rows_are_each_others_nearest() {
    for dim in [8, 40] {
        let k = 5;
        let base = uniform_rows(300, dim, 6);
        // Every row three times: rows 3i, 3i+1, 3i+2 coincide.
        let data: Vec<f32> = base
            .chunks_exact(dim)
            .flat_map(|row| row.iter().chain(row).chain(row).copied())
            .collect();
        let graph = search(&data, dim, k, Distance::Euclidean, 7)
            .nn_descent(None, &never, &quiet)
            .unwrap();
        assert_valid(&graph, 900, k);
        for row in 0..900 {
            let first = row / 3 * 3;
            let twins: Vec<u32> = (first..first + 3)
                .filter(|&j| j != row)
                .map(|j| j as u32)
                .collect();
            assert_eq!(&graph.neighbours(row)[..2], twins.as_slice(), "row {row}");
            assert_eq!(graph.distances(row)[..2], [0.0, 0.0]);
        }
    }
}

#[test]
fn warm_start_converges_with_less_work() {
    let (n, dim, k) = (800, 32, 14);
    let before = blobs(n, dim, 20, 8);
    let after = jitter(&before, 0.05, 9);
    let start = search(&before, dim, k, Distance::Euclidean, 10)
        .nn_descent(None, &never, &quiet)
        .unwrap();
    let s = search(&after, dim, k, Distance::Euclidean, 10);
    let exact = s.exact(&never, &quiet).unwrap();
    let (cold, cold_stats) = s.nn_descent_with_stats(None, &never, &quiet).unwrap();
    let (warm, warm_stats) = s
        .nn_descent_with_stats(Some(&start), &never, &quiet)
        .unwrap();
    assert_valid(&warm, n, k);
    let (r_cold, r_warm) = (recall(&cold, &exact), recall(&warm, &exact));
    assert!(
        r_warm >= 0.98 && r_warm >= r_cold - 0.005,
        "warm {r_warm}, cold {r_cold}"
    );
    assert!(
        warm_stats.distance_evaluations < cold_stats.distance_evaluations * 3 / 4,
        "warm {warm_stats:?}, cold {cold_stats:?}"
    );
    assert_eq!(warm_stats.trees, 0);
    // The warm start changed something: the start graph alone is worse.
    assert!(recall(&start, &exact) < r_warm);

    // A saved graph (no distances) and one with fewer neighbours work too.
    let saved = KnnGraph::from_indices(n, k, start.indices().to_vec()).unwrap();
    let from_saved = s.nn_descent(Some(&saved), &never, &quiet).unwrap();
    assert_eq!(from_saved, warm);
    let fewer: Vec<u32> = (0..n)
        .flat_map(|row| start.neighbours(row)[..5].to_vec())
        .collect();
    let fewer = KnnGraph::from_indices(n, 5, fewer).unwrap();
    let from_fewer = s.nn_descent(Some(&fewer), &never, &quiet).unwrap();
    assert!(recall(&from_fewer, &exact) >= 0.98);
    // Another row count: ignored (cold start).
    let other = search(&after[..100 * dim], dim, k, Distance::Euclidean, 10);
    let (_, stats) = other
        .nn_descent_with_stats(Some(&start), &never, &quiet)
        .unwrap();
    assert!(stats.trees > 0);
}

#[test]
fn same_result_on_any_thread_count() {
    // Enough rows for several chunks of parallel work, wide enough for the Gram kernel.
    let (dim, k) = (32, 10);
    let data = blobs(700, dim, 12, 11);
    let run = |threads: usize, seed: u64| {
        in_pool(threads, || {
            search(&data, dim, k, Distance::Euclidean, seed)
                .nn_descent(None, &never, &quiet)
                .unwrap()
        })
    };
    let exact = |threads: usize| {
        in_pool(threads, || {
            search(&data, dim, k, Distance::Euclidean, 12)
                .exact(&never, &quiet)
                .unwrap()
        })
    };
    let descent = run(1, 12);
    for threads in [2, 4] {
        assert_eq!(run(threads, 12), descent, "{threads} threads");
    }
    let truth = exact(1);
    assert_eq!(exact(4), truth);
    let other_seed = run(2, 13);
    assert_ne!(other_seed, descent);
    assert!(recall(&other_seed, &truth) >= 0.98 && recall(&descent, &truth) >= 0.98);
    // Warm starts too.
    let moved = jitter(&data, 0.05, 14);
    let warm = |threads: usize| {
        in_pool(threads, || {
            search(&moved, dim, k, Distance::Euclidean, 12)
                .nn_descent(Some(&descent), &never, &quiet)
                .unwrap()
        })
    };
    assert_eq!(warm(1), warm(4));
}

#[test]
fn cosine_on_normalised_rows_ranks_as_euclidean() {
    let (dim, k) = (12, 8);
    let mut data = blobs(800, dim, 10, 15);
    for row in data.chunks_exact_mut(dim) {
        let norm = row.iter().map(|x| x * x).sum::<f32>().sqrt();
        row.iter_mut().for_each(|x| *x /= norm);
    }
    for exact in [true, false] {
        let run = |distance| {
            let s = search(&data, dim, k, distance, 16);
            if exact {
                s.exact(&never, &quiet).unwrap()
            } else {
                s.nn_descent(None, &never, &quiet).unwrap()
            }
        };
        let (euclidean, cosine) = (run(Distance::Euclidean), run(Distance::Cosine));
        let same = recall(&cosine, &euclidean);
        assert!(same >= 0.99, "exact {exact}: {same}");
        // |a − b|² = 2 (1 − cos) for unit rows.
        for row in 0..data.len() / dim {
            for (e, c) in euclidean.distances(row).iter().zip(cosine.distances(row)) {
                assert!((e * e - 2.0 * c).abs() < 1e-4, "{e} {c}");
            }
        }
    }
    let truth = reference(&data[..200 * dim], dim, k, Distance::Cosine);
    let small = search(&data[..200 * dim], dim, k, Distance::Cosine, 0);
    assert_matches(&small.exact(&never, &quiet).unwrap(), &truth);
}

/// `is_cancelled` that turns true after `calls` polls, noting when.
struct CancelAfter {
    calls: usize,
    polls: AtomicUsize,
    fired: Mutex<Option<Instant>>,
}

impl CancelAfter {
    fn new(calls: usize) -> Self {
        Self {
            calls,
            polls: AtomicUsize::new(0),
            fired: Mutex::new(None),
        }
    }

    fn poll(&self) -> bool {
        let cancelled = self.polls.fetch_add(1, Ordering::SeqCst) >= self.calls;
        if cancelled {
            self.fired.lock().unwrap().get_or_insert_with(Instant::now);
        }
        cancelled
    }
}

#[test]
fn cancellation_stops_promptly() {
    let (dim, k) = (16, 10);
    let data = blobs(800, dim, 10, 17);
    let s = search(&data, dim, k, Distance::Euclidean, 18);
    type Run<'s> = Box<dyn Fn(&(dyn Fn() -> bool + Sync)) -> Result<KnnGraph, Cancelled> + 's>;
    let runs: [(&str, Run); 2] = [
        ("nn_descent", Box::new(|c| s.nn_descent(None, c, &quiet))),
        ("exact", Box::new(|c| s.exact(c, &quiet))),
    ];
    for (name, run) in runs {
        let uncancelled = CancelAfter::new(usize::MAX);
        let started = Instant::now();
        assert!(run(&|| uncancelled.poll()).is_ok());
        let full = started.elapsed();
        let polls = uncancelled.polls.load(Ordering::SeqCst);
        assert!(polls >= 10, "{name}: {polls} polls");
        // Every poll counts, the first and the last included.
        for calls in [0, polls / 2, polls - 1] {
            let cancel = CancelAfter::new(calls);
            assert_eq!(
                run(&|| cancel.poll()),
                Err(Cancelled),
                "{name} after {calls}"
            );
            let fired = cancel.fired.lock().unwrap().expect("polled past the limit");
            let latency = fired.elapsed();
            assert!(
                latency <= (full / 4).max(Duration::from_millis(50)),
                "{name}: returned {latency:?} after the cancellation (full run {full:?})"
            );
        }
        let exactly = CancelAfter::new(polls);
        assert!(run(&|| exactly.poll()).is_ok(), "{name}");
    }
}

#[test]
fn progress_reaches_its_total() {
    let data = blobs(1000, 8, 5, 19);
    let s = search(&data, 8, 5, Distance::Euclidean, 20);
    let seen = Mutex::new(Vec::new());
    let record = |done, total| seen.lock().unwrap().push((done, total));
    s.nn_descent(None, &never, &record).unwrap();
    let seen = seen.into_inner().unwrap();
    let &(done, total) = seen.last().unwrap();
    assert_eq!(done, total);
    assert!(seen.len() >= 3 && seen.iter().all(|&(d, t)| d <= t && t == total));
    let max_done = Mutex::new(0);
    s.exact(&never, &|done, total| {
        assert_eq!(total, 1000);
        let mut max = max_done.lock().unwrap();
        *max = (*max).max(done);
    })
    .unwrap();
    assert_eq!(max_done.into_inner().unwrap(), 1000);
}

#[test]
fn from_indices_rejects_invalid_graphs() {
    let valid = vec![1, 2, 0, 2, 0, 1];
    assert!(KnnGraph::from_indices(3, 2, valid.clone()).is_some());
    assert!(
        KnnGraph::from_indices(3, 2, valid[..5].to_vec()).is_none(),
        "short"
    );
    assert!(
        KnnGraph::from_indices(2, 2, vec![1, 0, 0, 1]).is_none(),
        "n ≤ k"
    );
    assert!(KnnGraph::from_indices(3, 0, vec![]).is_none(), "k = 0");
    assert!(
        KnnGraph::from_indices(3, 2, vec![1, 3, 0, 2, 0, 1]).is_none(),
        "out of range"
    );
    assert!(
        KnnGraph::from_indices(3, 2, vec![1, 2, 1, 2, 0, 1]).is_none(),
        "self loop"
    );
    assert!(
        KnnGraph::from_indices(3, 2, vec![1, 1, 0, 2, 0, 1]).is_none(),
        "repeated"
    );
    let graph = KnnGraph::from_indices(3, 2, valid.clone()).unwrap();
    assert_eq!(
        (graph.n_rows(), graph.k(), graph.indices()),
        (3, 2, valid.as_slice())
    );
    assert_eq!(graph.neighbours(1), &[0, 2]);
}

#[test]
fn far_apart_clusters_keep_their_neighbours() {
    // Clusters 1000 times farther apart than they are wide: dot products lose the
    // neighbours' distances to rounding, which the Gram mode must notice.
    let (n, dim, k) = (600, 40, 10);
    let mut rng = ChaCha8Rng::seed_from_u64(23);
    let centres: Vec<f32> = (0..10 * dim).map(|_| 1000.0 * gaussian(&mut rng)).collect();
    let data: Vec<f32> = (0..n)
        .flat_map(|i| {
            let c = i % 10;
            let centre = &centres[c * dim..(c + 1) * dim];
            centre
                .iter()
                .map(|&m| m + gaussian(&mut rng))
                .collect::<Vec<_>>()
        })
        .collect();
    let s = search(&data, dim, k, Distance::Euclidean, 24);
    let exact = s.exact(&never, &quiet).unwrap();
    let graph = s.nn_descent(None, &never, &quiet).unwrap();
    let r = recall(&graph, &exact);
    assert!(r >= 0.98, "recall {r}");
}

#[test]
fn bfloat16_rounds_to_nearest_even() {
    assert_eq!(bf16(1.0), 0x3F80);
    assert_eq!(from_bf16(bf16(-2.5)), -2.5);
    // Halfway between two bfloat16 values: to the even one.
    assert_eq!(bf16(f32::from_bits(0x3F80_8000)), 0x3F80);
    assert_eq!(bf16(f32::from_bits(0x3F81_8000)), 0x3F82);
    assert_eq!(bf16(f32::from_bits(0x3F80_8001)), 0x3F81);
    let data = uniform_rows(5, 45, 25);
    let rows: Vec<&[f32]> = data.chunks_exact(45).collect();
    let halves: Vec<Vec<u16>> = rows
        .iter()
        .map(|r| r.iter().map(|&x| bf16(x)).collect())
        .collect();
    let four = [
        &halves[1][..],
        &halves[2][..],
        &halves[3][..],
        &halves[4][..],
    ];
    for kernel in [Kernel::Portable, Kernel::detect()] {
        let dots = kernel.dot_bf16(rows[0], four);
        for (dot, q) in dots.iter().zip(&rows[1..]) {
            let want: f32 = rows[0].iter().zip(*q).map(|(a, b)| a * b).sum();
            assert!(
                (dot - want).abs() < 1e-2 * want,
                "{kernel:?}: {dot} vs {want}"
            );
        }
    }
}

#[test]
fn gram_kernel_is_consistent() {
    let data = uniform_rows(7, 77, 22);
    let rows: Vec<&[f32]> = data.chunks_exact(77).collect();
    let left = [rows[0], rows[1], rows[2]];
    let right = [rows[3], rows[4], rows[5], rows[6]];
    for kernel in [Kernel::Portable, Kernel::detect()] {
        let block = kernel.gram(left, right);
        for (r, l) in left.iter().enumerate() {
            for (c, q) in right.iter().enumerate() {
                // Any block shape, either way round: the same bits.
                let single = kernel.gram([*l], [*q])[0][0];
                assert_eq!(single.to_bits(), block[r][c].to_bits());
                assert_eq!(kernel.gram([*q], [*l])[0][0].to_bits(), single.to_bits());
                let want: f32 = l.iter().zip(*q).map(|(a, b)| a * b).sum();
                assert!((single - want).abs() < 1e-4 * want, "{kernel:?}");
            }
        }
    }
}

#[test]
fn kernels_agree() {
    let data = uniform_rows(6, 77, 21);
    let rows: Vec<&[f32]> = data.chunks_exact(77).collect();
    let p = rows[0];
    let four = [rows[1], rows[2], rows[3], rows[4]];
    for kernel in [Kernel::Portable, Kernel::detect()] {
        let sq = kernel.sq_euclidean(p, four);
        let dot = kernel.dot(p, four);
        for (i, q) in four.iter().enumerate() {
            // One row at a time, either way round: the same bits.
            assert_eq!(kernel.sq_euclidean(p, [q])[0].to_bits(), sq[i].to_bits());
            assert_eq!(kernel.sq_euclidean(q, [p])[0].to_bits(), sq[i].to_bits());
            assert_eq!(kernel.dot(q, [p])[0].to_bits(), dot[i].to_bits());
            let want_sq: f32 = p.iter().zip(*q).map(|(a, b)| (a - b) * (a - b)).sum();
            let want_dot: f32 = p.iter().zip(*q).map(|(a, b)| a * b).sum();
            assert!((sq[i] - want_sq).abs() < 1e-4 * want_sq, "{kernel:?}");
            assert!((dot[i] - want_dot).abs() < 1e-4 * want_dot, "{kernel:?}");
        }
    }
}

#[test]
fn query_finds_the_exact_nearest_known_rows_of_new_rows() {
    let (dim, k) = (12, 7);
    let base = uniform_rows(500, dim, 1);
    let queries = uniform_rows(70, dim, 2);
    let found = search(&base, dim, k, Distance::Euclidean, 0)
        .query(&queries, &never)
        .unwrap();
    for (q, row) in queries.chunks_exact(dim).enumerate() {
        let mut all: Vec<(f64, u32)> = base
            .chunks_exact(dim)
            .enumerate()
            .map(|(j, b)| {
                let d: f64 = row
                    .iter()
                    .zip(b)
                    .map(|(&x, &y)| (f64::from(x) - f64::from(y)).powi(2))
                    .sum();
                (d, j as u32)
            })
            .collect();
        all.sort_by(|x, y| x.0.total_cmp(&y.0).then(x.1.cmp(&y.1)));
        let expected: Vec<u32> = all.iter().take(k).map(|&(_, j)| j).collect();
        assert_eq!(found[q * k..(q + 1) * k], expected[..], "query {q}");
    }
    let cancelled = search(&base, dim, k, Distance::Euclidean, 0).query(&queries, &|| true);
    assert!(cancelled.is_err());
}
