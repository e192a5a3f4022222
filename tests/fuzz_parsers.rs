//! Random and mutated bytes into every parser: IDX (plain and gzip), NPY, NPZ (stored and
//! deflated), PNG and TIFF folders, labels CSV, label store and its sidecar, session.json and
//! the config TOML. None may panic, and no single allocation may exceed a bound.
//!
//! A seeded mutation loop (ChaCha8) on crates already in the tree, so no dev-dependency is
//! added (proptest would bring nine new crates, though it changes no existing features).
//! A failure prints the parser, the case number and the input; the seed is fixed.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sense::data::{OpenOptions, idx, npy};
use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Write;
use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Records the largest single allocation the parsers ask for.
struct Tracking;

static LARGEST: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator unchanged; only records sizes.
unsafe impl GlobalAlloc for Tracking {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        // SAFETY: the caller's contract is passed on.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract is passed on.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LARGEST.fetch_max(new_size, Ordering::Relaxed);
        // SAFETY: the caller's contract is passed on.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Tracking = Tracking;

/// No parser may ask for more than this at once on inputs of a few kilobytes.
const MAX_ALLOCATION: usize = 256 << 20;
/// Mutated cases per parser; a few thousand in all.
const CASES: usize = 300;

/// One mutation of `seed`: flipped bits, overwritten words (extreme values where sizes and
/// counts live), truncation, inserted or duplicated runs, or pure noise.
fn mutate(rng: &mut ChaCha8Rng, seed: &[u8]) -> Vec<u8> {
    let mut bytes = seed.to_vec();
    let edits = rng.random_range(1..=4);
    for _ in 0..edits {
        let len = bytes.len().max(1);
        match rng.random_range(0..7) {
            0 => {
                let i = rng.random_range(0..len);
                if let Some(b) = bytes.get_mut(i) {
                    *b ^= 1 << rng.random_range(0..8);
                }
            }
            1 => {
                let i = rng.random_range(0..len);
                let word: [u8; 4] = match rng.random_range(0..4) {
                    0 => [0xff; 4],
                    1 => [0x7f, 0xff, 0xff, 0xff],
                    2 => [0; 4],
                    _ => rng.random(),
                };
                for (k, w) in word.iter().enumerate() {
                    if let Some(b) = bytes.get_mut(i + k) {
                        *b = *w;
                    }
                }
            }
            2 => bytes.truncate(rng.random_range(0..len)),
            3 => {
                let i = rng.random_range(0..=bytes.len());
                let run: Vec<u8> = (0..rng.random_range(1..64)).map(|_| rng.random()).collect();
                bytes.splice(i..i, run);
            }
            4 => {
                let i = rng.random_range(0..len);
                let j = (i + rng.random_range(1..256)).min(bytes.len());
                let copy = bytes.get(i..j).unwrap_or_default().to_vec();
                bytes.extend_from_slice(&copy);
            }
            5 => {
                let i = rng.random_range(0..len);
                if let Some(b) = bytes.get_mut(i) {
                    *b = rng.random();
                }
            }
            _ => {
                bytes = (0..rng.random_range(0..512))
                    .map(|_| rng.random())
                    .collect();
            }
        }
    }
    bytes
}

/// Runs `parse` on `CASES` mutations of each seed; any panic or oversized allocation fails,
/// naming the parser and the case.
fn fuzz(name: &str, seeds: &[Vec<u8>], mut parse: impl FnMut(&[u8])) {
    let mut rng = ChaCha8Rng::seed_from_u64(0x5E45E);
    for case in 0..CASES {
        let seed = &seeds[case % seeds.len()];
        let bytes = mutate(&mut rng, seed);
        // Unmutated seeds first: they must parse without trouble too.
        let input = if case < seeds.len() { seed } else { &bytes };
        LARGEST.store(0, Ordering::Relaxed);
        let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| parse(input)));
        assert!(
            outcome.is_ok(),
            "{name}: case {case} panicked on {} bytes: {:02x?}",
            input.len(),
            &input[..input.len().min(96)]
        );
        let largest = LARGEST.load(Ordering::Relaxed);
        assert!(
            largest <= MAX_ALLOCATION,
            "{name}: case {case} allocated {largest} bytes at once"
        );
    }
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

fn idx_images() -> Vec<u8> {
    let mut bytes = vec![0, 0, 0x08, 3];
    for d in [3u32, 4, 4] {
        bytes.extend_from_slice(&d.to_be_bytes());
    }
    bytes.extend((0..48).map(|v| v as u8));
    bytes
}

fn npy_bytes() -> Vec<u8> {
    let mut out = Vec::new();
    {
        use npyz::WriterBuilder;
        let mut writer = npyz::WriteOptions::new()
            .default_dtype()
            .shape(&[3, 1, 4, 4])
            .writer(&mut out)
            .begin_nd()
            .unwrap();
        writer.extend((0..48).map(|v| v as f32)).unwrap();
        writer.finish().unwrap();
    }
    out
}

fn npz_bytes(method: zip::CompressionMethod) -> Vec<u8> {
    let mut cursor = std::io::Cursor::new(Vec::new());
    let mut archive = zip::ZipWriter::new(&mut cursor);
    let options = zip::write::FileOptions::default().compression_method(method);
    archive.start_file("images.npy", options).unwrap();
    archive.write_all(&npy_bytes()).unwrap();
    archive.finish().unwrap();
    drop(archive);
    cursor.into_inner()
}

fn png_bytes() -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    image::GrayImage::from_fn(4, 4, |x, y| image::Luma([(x * 16 + y) as u8]))
        .write_to(&mut out, image::ImageFormat::Png)
        .unwrap();
    out.into_inner()
}

fn tiff_bytes() -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    image::GrayImage::from_fn(4, 4, |x, y| image::Luma([(x * 16 + y) as u8]))
        .write_to(&mut out, image::ImageFormat::Tiff)
        .unwrap();
    out.into_inner()
}

/// Opens `spec` and decodes every member, as training would; errors are fine.
fn open_and_read(spec: &Path, options: &OpenOptions) {
    if let Ok(ensemble) = sense::data::open(spec.to_str().unwrap(), options) {
        let mut out = vec![0.0; ensemble.shape().len()];
        for i in 0..ensemble.len() {
            let _ = ensemble.source.read_f32(i, &mut out);
        }
    }
}

#[test]
fn idx_parsers_survive_mutation() {
    let plain = idx_images();
    let seeds = vec![plain.clone(), gzip(&plain)];
    fuzz("IDX images", &seeds, |bytes| {
        if let Ok(array) = idx::images_from_bytes(Path::new("fuzz"), bytes) {
            use sense::data::MemberSource;
            let mut out = vec![0.0; array.shape().len()];
            for i in 0..array.len() {
                let _ = array.read_f32(i, &mut out);
            }
        }
    });
    let mut labels = vec![0, 0, 0x08, 1];
    labels.extend_from_slice(&5u32.to_be_bytes());
    labels.extend_from_slice(&[1, 2, 3, 4, 5]);
    let seeds = vec![labels.clone(), gzip(&labels)];
    fuzz("IDX labels", &seeds, |bytes| {
        let _ = idx::labels_from_bytes(Path::new("fuzz"), bytes);
    });
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x-images-idx3-ubyte");
    fuzz("IDX file", &[plain], |bytes| {
        std::fs::write(&path, bytes).unwrap();
        open_and_read(&path, &OpenOptions::default());
    });
}

#[test]
fn npy_and_npz_survive_mutation() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.npy");
    fuzz("NPY", &[npy_bytes()], |bytes| {
        std::fs::write(&path, bytes).unwrap();
        if let Ok(array) = npy::open_npy(&path) {
            use sense::data::MemberSource;
            let mut out = vec![0.0; array.shape().len()];
            for i in 0..array.len() {
                let _ = array.read_f32(i, &mut out);
            }
        }
    });
    let path = dir.path().join("x.npz");
    let seeds = vec![
        npz_bytes(zip::CompressionMethod::Stored),
        npz_bytes(zip::CompressionMethod::Deflated),
    ];
    fuzz("NPZ", &seeds, |bytes| {
        std::fs::write(&path, bytes).unwrap();
        open_and_read(&path, &OpenOptions::default());
    });
}

#[test]
fn image_folders_survive_mutation() {
    let dir = tempfile::tempdir().unwrap();
    let good = png_bytes();
    for (name, seed) in [("b.png", png_bytes()), ("b.tif", tiff_bytes())] {
        let folder = dir.path().join(name.replace('.', "_"));
        std::fs::create_dir(&folder).unwrap();
        std::fs::write(folder.join("a.png"), &good).unwrap();
        let path = folder.join(name);
        fuzz(name, &[seed], |bytes| {
            std::fs::write(&path, bytes).unwrap();
            open_and_read(&folder, &OpenOptions::default());
        });
    }
}

#[test]
fn labels_csv_survives_mutation() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("images");
    std::fs::create_dir(&folder).unwrap();
    for name in ["a.png", "b.png", "c.png"] {
        std::fs::write(folder.join(name), png_bytes()).unwrap();
    }
    let ensemble = sense::data::open(folder.to_str().unwrap(), &OpenOptions::default()).unwrap();
    let path = dir.path().join("labels.csv");
    let seeds = vec![
        b"id,label\na.png,cat\nb.png,dog\nc.png,\n".to_vec(),
        b"label,id\n1,0\n2,1\n".to_vec(),
    ];
    fuzz("labels CSV", &seeds, |bytes| {
        std::fs::write(&path, bytes).unwrap();
        let _ = sense::data::ClassLabels::load(&path, &ensemble);
    });
}

#[test]
fn label_store_and_sidecar_survive_mutation() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("labels.csv");
    {
        let mut store = sense::labels::LabelStore::create(&path).unwrap();
        let provenance = sense::labels::Provenance::user("fuzz");
        store
            .set_manual(&["a.png", "b.png"], "cat", provenance.clone())
            .unwrap();
        store.set_manual(&["c.png"], "dog", provenance).unwrap();
        store.rename_class("dog", "hound").unwrap();
    }
    let csv = std::fs::read(&path).unwrap();
    let sidecar_path = dir.path().join("labels.classes.json");
    let sidecar = std::fs::read(&sidecar_path).unwrap();
    fuzz("label store CSV", std::slice::from_ref(&csv), |bytes| {
        std::fs::write(&path, bytes).unwrap();
        std::fs::write(&sidecar_path, &sidecar).unwrap();
        if let Ok(store) = sense::labels::LabelStore::open_read_only(&path) {
            let _ = store.class_counts(0.5);
            let _ = store.snapshot(0.5);
        }
    });
    fuzz("label store sidecar", &[sidecar], |bytes| {
        std::fs::write(&path, &csv).unwrap();
        std::fs::write(&sidecar_path, bytes).unwrap();
        if let Ok(store) = sense::labels::LabelStore::open_read_only(&path) {
            let _ = store.class_counts(0.5);
        }
    });
}

#[test]
fn session_and_config_survive_mutation() {
    let dir = tempfile::tempdir().unwrap();
    let session = sense::app::Session {
        dir: dir.path().to_path_buf(),
        file: Default::default(),
    };
    session.save().unwrap();
    let path = dir.path().join("session.json");
    let seed = std::fs::read(&path).unwrap();
    fuzz("session.json", &[seed], |bytes| {
        std::fs::write(&path, bytes).unwrap();
        let _ = sense::app::Session::load(dir.path());
    });
    let config = sense::train::TrainConfig::default().to_toml().into_bytes();
    fuzz("config TOML", &[config], |bytes| {
        let text = String::from_utf8_lossy(bytes);
        if let Ok(config) = sense::train::TrainConfig::from_toml(&text) {
            let _ = config.validate();
            let _ = config.model.validate(sense::data::Shape::new(1, 28, 28));
        }
    });
}

#[test]
fn pure_noise_with_every_extension() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    for case in 0..CASES {
        for name in ["n.npy", "n.npz", "n-images-idx3-ubyte", "n.idx.gz"] {
            let bytes: Vec<u8> = (0..rng.random_range(0..300))
                .map(|_| rng.random())
                .collect();
            let path = dir.path().join(name);
            std::fs::write(&path, &bytes).unwrap();
            let outcome =
                std::panic::catch_unwind(|| open_and_read(&path, &OpenOptions::default()));
            assert!(outcome.is_ok(), "{name}: noise case {case} panicked");
        }
    }
}
