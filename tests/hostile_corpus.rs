//! Hostile input against the real binary: every case must end with exit code 1 (not a panic's
//! 101, not a signal, not a hang), a message naming the file at fault, and a peak resident set
//! under 1 GB, decompression bombs included. Small cases live in `tests/fixtures/hostile/`
//! (and `malformed/`); large ones are generated here, cheaply (sparse files, repeated
//! compressed blocks).

use std::ffi::OsString;
use std::fs::File;
use std::io::Write;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The peak resident set every case must stay under.
const MAX_RSS_BYTES: u64 = 1_000_000_000;
/// A case that runs longer than this hangs (a FIFO, a lock wait).
const TIMEOUT: Duration = Duration::from_secs(120);

fn fixture(dir: &str, name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(dir)
        .join(name)
}

fn hostile(name: &str) -> PathBuf {
    fixture("hostile", name)
}

fn malformed(name: &str) -> PathBuf {
    fixture("malformed", name)
}

fn tiny_folder() -> PathBuf {
    fixture("", "tiny_folder")
}

struct Outcome {
    /// Exit code, or `None` when a signal ended it.
    code: Option<i32>,
    signal: Option<i32>,
    stdout: String,
    stderr: String,
    max_rss_bytes: u64,
}

/// The binary under test. `SENSE_TEST_BIN` overrides cargo's, for a copy taken right after the
/// build when other worktrees share the target directory (and may rebuild it meanwhile).
fn sense_binary() -> PathBuf {
    std::env::var_os("SENSE_TEST_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_sense")))
}

/// Runs `sense` with `args`; its peak resident set comes from `wait4`.
fn run_sense(args: &[OsString], scratch: &Path, tag: &str) -> Outcome {
    let out_path = scratch.join(format!("{tag}.stdout"));
    let err_path = scratch.join(format!("{tag}.stderr"));
    let child = Command::new(sense_binary())
        .args(args)
        .current_dir(scratch)
        .env("RUST_BACKTRACE", "0")
        .stdin(Stdio::null())
        .stdout(File::create(&out_path).unwrap())
        .stderr(File::create(&err_path).unwrap())
        .spawn()
        .expect("sense binary runs");
    let pid = child.id() as libc::pid_t;
    let started = Instant::now();
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid out-parameter for wait4.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: waits for our own child; status and usage are valid out-parameters.
        let reaped = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut usage) };
        if reaped == pid {
            break;
        }
        assert!(reaped == 0, "wait4 failed for {tag}");
        if started.elapsed() > TIMEOUT {
            // SAFETY: signals our own child, not yet reaped.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    drop(child);
    let (code, signal) = if libc::WIFEXITED(status) {
        (Some(libc::WEXITSTATUS(status)), None)
    } else {
        (None, Some(libc::WTERMSIG(status)))
    };
    Outcome {
        code,
        signal,
        stdout: std::fs::read_to_string(&out_path).unwrap_or_default(),
        stderr: std::fs::read_to_string(&err_path).unwrap_or_default(),
        // ru_maxrss is in KiB on Linux.
        max_rss_bytes: usage.ru_maxrss.max(0) as u64 * 1024,
    }
}

/// One hostile input: the command line, and what the error message must contain.
struct Case {
    name: &'static str,
    args: Vec<OsString>,
    /// Substrings of stderr: the file at fault, and often a word of the reason.
    expect: Vec<String>,
}

fn case(name: &'static str, args: &[&dyn AsArg], expect: &[&str]) -> Case {
    Case {
        name,
        args: args.iter().map(|a| a.as_arg()).collect(),
        expect: expect.iter().map(|s| s.to_string()).collect(),
    }
}

trait AsArg {
    fn as_arg(&self) -> OsString;
}

impl AsArg for str {
    fn as_arg(&self) -> OsString {
        self.into()
    }
}

impl AsArg for &str {
    fn as_arg(&self) -> OsString {
        (*self).into()
    }
}

impl AsArg for PathBuf {
    fn as_arg(&self) -> OsString {
        self.clone().into_os_string()
    }
}

// ---- generated inputs ----

/// A gzip member of `zeros` zero bytes, preceded by `prefix`.
fn gzip_member(prefix: &[u8], zeros: usize) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(prefix).unwrap();
    let block = vec![0u8; 1 << 20];
    for _ in 0..zeros >> 20 {
        encoder.write_all(&block).unwrap();
    }
    encoder.finish().unwrap()
}

/// A gzip stream of `prefix` then about `gib` GiB of zeros: one compressed 64 MiB member
/// repeated (gzip readers concatenate members), so it is cheap to write.
fn gzip_bomb(path: &Path, prefix: &[u8], gib: usize) {
    let zeros = gzip_member(&[], 64 << 20);
    let mut file = std::io::BufWriter::new(File::create(path).unwrap());
    file.write_all(&gzip_member(prefix, 0)).unwrap();
    for _ in 0..gib * 16 {
        file.write_all(&zeros).unwrap();
    }
    file.flush().unwrap();
}

fn idx_header(type_code: u8, dims: &[u32]) -> Vec<u8> {
    let mut bytes = vec![0, 0, type_code, dims.len() as u8];
    for d in dims {
        bytes.extend_from_slice(&d.to_be_bytes());
    }
    bytes
}

/// A raw deflate stream of `prefix` then `gib` GiB of zeros, built from one sync-flushed block
/// of 64 MiB of zeros repeated (its back-references only reach zeros), then an empty final
/// block.
fn deflate_bomb(prefix: &[u8], gib: usize) -> Vec<u8> {
    use flate2::{Compress, Compression, FlushCompress};
    let compress = |compressor: &mut Compress, input: &[u8]| {
        let mut out = Vec::with_capacity(1 << 20);
        let mut consumed = 0;
        loop {
            let before_in = compressor.total_in();
            out.reserve(1 << 20);
            compressor
                .compress_vec(&input[consumed..], &mut out, FlushCompress::Sync)
                .unwrap();
            consumed += (compressor.total_in() - before_in) as usize;
            if consumed == input.len() && out.len() < out.capacity() {
                return out;
            }
        }
    };
    let mut stream = compress(&mut Compress::new(Compression::fast(), false), prefix);
    let block = compress(
        &mut Compress::new(Compression::fast(), false),
        &vec![0u8; 64 << 20],
    );
    for _ in 0..gib * 16 {
        stream.extend_from_slice(&block);
    }
    stream.extend_from_slice(&[0x03, 0x00]); // final, empty fixed-Huffman block
    stream
}

/// A one-entry zip archive written by hand, so the declared sizes can be anything.
fn zip_with_entry(path: &Path, name: &str, deflated: &[u8], uncompressed: u32) {
    let mut local = Vec::new();
    let name = name.as_bytes();
    let crc = 0u32; // never reached: the declared size is refused first
    let common = |out: &mut Vec<u8>| {
        out.extend_from_slice(&20u16.to_le_bytes()); // version needed
        out.extend_from_slice(&0u16.to_le_bytes()); // flags
        out.extend_from_slice(&8u16.to_le_bytes()); // deflate
        out.extend_from_slice(&0u32.to_le_bytes()); // time, date
        out.extend_from_slice(&crc.to_le_bytes());
        out.extend_from_slice(&(deflated.len() as u32).to_le_bytes());
        out.extend_from_slice(&uncompressed.to_le_bytes());
        out.extend_from_slice(&(name.len() as u16).to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes()); // extra
    };
    local.extend_from_slice(&0x04034b50u32.to_le_bytes());
    common(&mut local);
    local.extend_from_slice(name);
    local.extend_from_slice(deflated);
    let central_offset = local.len() as u32;
    let mut central = Vec::new();
    central.extend_from_slice(&0x02014b50u32.to_le_bytes());
    central.extend_from_slice(&20u16.to_le_bytes()); // version made by
    common(&mut central);
    central.extend_from_slice(&[0u8; 6]); // comment length, disk, internal attributes
    central.extend_from_slice(&0u32.to_le_bytes()); // external attrs
    central.extend_from_slice(&0u32.to_le_bytes()); // local header offset
    central.extend_from_slice(name);
    let mut end = Vec::new();
    end.extend_from_slice(&0x06054b50u32.to_le_bytes());
    end.extend_from_slice(&[0u8; 4]); // disk numbers
    end.extend_from_slice(&1u16.to_le_bytes());
    end.extend_from_slice(&1u16.to_le_bytes());
    end.extend_from_slice(&(central.len() as u32).to_le_bytes());
    end.extend_from_slice(&central_offset.to_le_bytes());
    end.extend_from_slice(&0u16.to_le_bytes());
    let mut file = File::create(path).unwrap();
    file.write_all(&local).unwrap();
    file.write_all(&central).unwrap();
    file.write_all(&end).unwrap();
}

fn npy_header(descr: &str, shape: &[u64]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(u64::to_string).collect();
    let mut text = format!(
        "{{'descr': '{descr}', 'fortran_order': False, 'shape': ({},), }}",
        dims.join(", ")
    );
    while (10 + text.len() + 1) % 64 != 0 {
        text.push(' ');
    }
    text.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend_from_slice(&(text.len() as u16).to_le_bytes());
    bytes.extend_from_slice(text.as_bytes());
    bytes
}

/// A grey PNG of `size`² zero pixels (compresses to almost nothing).
fn write_zero_png(path: &Path, size: u32) {
    use image::ImageEncoder;
    let file = std::io::BufWriter::new(File::create(path).unwrap());
    let encoder = image::codecs::png::PngEncoder::new_with_quality(
        file,
        image::codecs::png::CompressionType::Fast,
        image::codecs::png::FilterType::NoFilter,
    );
    let pixels = vec![0u8; size as usize * size as usize];
    encoder
        .write_image(&pixels, size, size, image::ExtendedColorType::L8)
        .unwrap();
}

fn write_small_png(path: &Path) {
    image::GrayImage::from_pixel(4, 4, image::Luma([7u8]))
        .save(path)
        .unwrap();
}

fn write(path: &Path, bytes: impl AsRef<[u8]>) -> PathBuf {
    std::fs::write(path, bytes).unwrap();
    path.to_path_buf()
}

const STORE_HEADER: &str = "id,manual_label,manual_source,manual_time,pseudo_label,\
                            pseudo_confidence,pseudo_source,pseudo_time\n";

/// Every case, with its generated inputs under `dir`.
fn cases(dir: &Path) -> Vec<Case> {
    let mut cases = Vec::new();
    let p = |name: &str| dir.join(name);

    // 1. Decompression bombs: the declared size is refused before any data is read.
    let idx_bomb = p("bomb-images.idx3-ubyte.gz");
    gzip_bomb(&idx_bomb, &idx_header(0x08, &[65535, 256, 256]), 4);
    cases.push(case(
        "gzip IDX declaring 4 GiB, holding 4 GiB",
        &[&"info", &idx_bomb],
        &["bomb-images.idx3-ubyte.gz", "limit"],
    ));
    let idx_bomb_4d = p("bomb4-images.idx3-ubyte.gz");
    gzip_bomb(&idx_bomb_4d, &idx_header(0x0D, &[4096, 1, 512, 512]), 2);
    cases.push(case(
        "gzip f32 IDX of 4096 members declaring 4 GiB",
        &[&"info", &idx_bomb_4d],
        &["bomb4-images.idx3-ubyte.gz", "limit"],
    ));
    let small_images = p("small-images.idx3-ubyte");
    let mut bytes = idx_header(0x08, &[20, 2, 2]);
    bytes.extend_from_slice(&[9u8; 80]);
    write(&small_images, &bytes);
    let labels_bomb = p("bomb-labels-idx1-ubyte.gz");
    gzip_bomb(&labels_bomb, &idx_header(0x08, &[u32::MAX]), 2);
    cases.push(case(
        "gzip IDX labels of 4.29 billion for 20 members",
        &[&"info", &small_images, &"--labels", &labels_bomb],
        &["bomb-labels-idx1-ubyte.gz", "4294967295 labels"],
    ));
    let sibling_dir = p("sibling");
    std::fs::create_dir(&sibling_dir).unwrap();
    let sibling_images = sibling_dir.join("train-images-idx3-ubyte");
    std::fs::copy(&small_images, &sibling_images).unwrap();
    std::fs::copy(&labels_bomb, sibling_dir.join("train-labels-idx1-ubyte.gz")).unwrap();
    cases.push(case(
        "gzip labels bomb found beside the images",
        &[&"info", &sibling_images],
        &["train-labels-idx1-ubyte.gz", "20 members"],
    ));
    let small_labels_bomb = p("lying-labels-idx1-ubyte.gz");
    gzip_bomb(&small_labels_bomb, &idx_header(0x08, &[20]), 1);
    cases.push(case(
        "gzip labels declaring 20, holding 1 GiB",
        &[&"info", &small_images, &"--labels", &small_labels_bomb],
        &["lying-labels-idx1-ubyte.gz", "more data"],
    ));
    cases.push(case(
        "gzip labels bomb given to train",
        &[
            &"train",
            &"--data",
            &small_images,
            &"--labels",
            &labels_bomb,
            &"--out",
            &p("run-labels-bomb"),
            &"--epochs",
            &"1",
        ],
        &["bomb-labels-idx1-ubyte.gz"],
    ));
    let npz_bomb = p("bomb.npz");
    // 15360×512² bytes is exactly the 0xF000_0000 the entry declares past the header.
    let npy = npy_header("|u1", &[15360, 1, 512, 512]);
    zip_with_entry(
        &npz_bomb,
        "images.npy",
        &deflate_bomb(&npy, 4),
        npy.len() as u32 + 0xF000_0000,
    );
    cases.push(case(
        "deflated NPZ entry declaring 4 GiB",
        &[&"info", &npz_bomb],
        &["bomb.npz"],
    ));

    // 2. Member size: the f32 buffer is checked before it is allocated.
    let sparse = p("sparse.npy");
    let mut file = File::create(&sparse).unwrap();
    let header = npy_header("<f4", &[2, 50000, 50000]);
    file.write_all(&header).unwrap();
    file.set_len(header.len() as u64 + 2 * 50000 * 50000 * 4)
        .unwrap();
    cases.push(case(
        "sparse 2×50000² f32 NPY",
        &[&"info", &sparse],
        &["sparse.npy", "limit"],
    ));
    cases.push(case(
        "NPY header of 10 GB members, no data",
        &[&"info", &hostile("huge_member.npy")],
        &["huge_member.npy"],
    ));
    let big_pngs = p("big_pngs");
    std::fs::create_dir(&big_pngs).unwrap();
    write_zero_png(&big_pngs.join("0.png"), 16384);
    for i in 1..8 {
        std::fs::copy(big_pngs.join("0.png"), big_pngs.join(format!("{i}.png"))).unwrap();
    }
    cases.push(case(
        "eight 16384² PNGs (1 GiB each as f32)",
        &[&"info", &big_pngs],
        &["0.png", "limit"],
    ));
    cases.push(case(
        "eight 16384² PNGs given to train",
        &[
            &"train",
            &"--data",
            &big_pngs,
            &"--out",
            &p("run-big-pngs"),
            &"--epochs",
            &"1",
        ],
        &["0.png", "limit"],
    ));
    cases.push(case(
        "PNG header claiming 100000²",
        &[&"info", &hostile("lying_png")],
        &["huge.png"],
    ));
    cases.push(case(
        "PNG of zero width",
        &[&"info", &hostile("zero_width_png")],
        &["empty.png"],
    ));
    cases.push(case(
        "--resize 100000x100000 on a folder",
        &[&"info", &tiny_folder(), &"--resize", &"100000x100000"],
        &["tiny_folder", "limit"],
    ));
    cases.push(case(
        "--resize 100000x100000 on an IDX file",
        &[&"info", &small_images, &"--resize", &"100000x100000"],
        &["small-images.idx3-ubyte", "limit"],
    ));
    cases.push(case(
        "--resize 100000x100000 on an NPY file",
        &[
            &"info",
            &malformed("nan_inf.npy"),
            &"--resize",
            &"100000x100000",
        ],
        &["nan_inf.npy", "limit"],
    ));
    cases.push(case(
        "[model] filters = 100000",
        &[
            &"train",
            &"--data",
            &small_images,
            &"--config",
            &hostile("huge_filters.toml"),
            &"--out",
            &p("run-filters"),
        ],
        &["huge_filters.toml", "filters"],
    ));

    // 3. Ids from file names without loss: two files with one id are refused at open.
    let same_id = p("same_id");
    std::fs::create_dir(&same_id).unwrap();
    write_small_png(&same_id.join(PathBuf::from(OsString::from_vec(b"a\xff.png".to_vec()))));
    write_small_png(&same_id.join("a\\xff.png"));
    cases.push(case(
        "a file named with byte 0xff beside one named with the text \\xff",
        &[&"info", &same_id],
        &["a\\xff.png", "same member id"],
    ));

    // 4. One writer per run directory.
    cases.push(case(
        "train into a run directory another process holds",
        &[
            &"train",
            &"--data",
            &small_images,
            &"--out",
            &p("locked-run"),
            &"--epochs",
            &"1",
        ],
        &["locked-run", "another sense process"],
    ));

    // 6. Class names of 64 KiB and more.
    let long = "x".repeat(70_000);
    let long_labels = write(&p("long_label.csv"), format!("id,label\na.png,{long}\n"));
    cases.push(case(
        "labels CSV with a 70,000-byte class name",
        &[&"info", &tiny_folder(), &"--labels", &long_labels],
        &["long_label.csv", "at most"],
    ));
    let long_store = write(
        &p("long_store.csv"),
        format!("{STORE_HEADER}a.png,{long},user:x,2026-01-01T00:00:00Z,,,,\n"),
    );
    cases.push(case(
        "label store with a 70,000-byte class name",
        &[&"labels", &long_store],
        &["long_store.csv", "at most"],
    ));
    cases.push(case(
        "importing a 70,000-byte class name into a store",
        &[
            &"labels",
            &p("new_store.csv"),
            &"--import",
            &tiny_folder(),
            &"--import-labels",
            &long_labels,
        ],
        &["long_label.csv", "at most"],
    ));
    cases.push(case(
        "pseudo-label with a 70,000-byte class name",
        &[
            &"pseudo-label",
            &"--data",
            &tiny_folder(),
            &"--labels",
            &long_store,
            &"--out",
            &p("pl_store.csv"),
        ],
        &["long_store.csv", "at most"],
    ));

    // 7. Runs are never silently replaced.
    let old_run = p("old-run");
    std::fs::create_dir(&old_run).unwrap();
    write(&old_run.join("config.toml"), "epochs = 3\n");
    write(&old_run.join("metrics.jsonl"), "{}\n{}\n{}\n");
    cases.push(case(
        "train into an existing run without --resume",
        &[
            &"train",
            &"--data",
            &small_images,
            &"--out",
            &old_run,
            &"--epochs",
            &"1",
        ],
        &["old-run", "--force"],
    ));
    let resumed = p("resumed-run");
    std::fs::create_dir(&resumed).unwrap();
    write(&resumed.join("config.toml"), "epochs = 3\n");
    write(
        &resumed.join("dataset.json"),
        r#"{"data": "sample:mnist", "labels": null}"#,
    );
    std::fs::create_dir(resumed.join("checkpoint")).unwrap();
    write(&resumed.join("checkpoint/state.json"), "{}");
    let unstarted = p("unstarted-run");
    std::fs::create_dir(&unstarted).unwrap();
    write(&unstarted.join("config.toml"), "epochs = 3\n");
    cases.push(case(
        "--resume of a run without a checkpoint",
        &[
            &"train",
            &"--data",
            &small_images,
            &"--out",
            &unstarted,
            &"--resume",
        ],
        &["unstarted-run", "no checkpoint", "--force"],
    ));
    cases.push(case(
        "--resume with other data",
        &[
            &"train",
            &"--data",
            &small_images,
            &"--out",
            &resumed,
            &"--resume",
        ],
        &["dataset.json", "sample:mnist"],
    ));
    let latents = write(&p("latents.npy"), npy_matrix(&[[0.0, 1.0], [1.0, 0.0]]));
    cases.push(case(
        "embed --out onto an existing file",
        &[&"embed", &"--latents", &latents, &"--out", &latents],
        &["latents.npy", "--force"],
    ));

    // 8. A label store of another dataset.
    cases.push(case(
        "train --labels with another dataset's store",
        &[
            &"train",
            &"--data",
            &tiny_folder(),
            &"--labels",
            &hostile("store_other_dataset.csv"),
            &"--out",
            &p("run-other-store"),
        ],
        &["store_other_dataset.csv", "another dataset"],
    ));
    cases.push(case(
        "pseudo-label with another dataset's store",
        &[
            &"pseudo-label",
            &"--data",
            &tiny_folder(),
            &"--labels",
            &hostile("store_other_dataset.csv"),
            &"--out",
            &p("pl_store2.csv"),
        ],
        &["store_other_dataset.csv", "another dataset"],
    ));

    // 9. Smaller points.
    let fifo = p("x.npy");
    let c_path = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
    cases.push(case(
        "a FIFO named x.npy",
        &[&"info", &fifo],
        &["x.npy", "not a regular file"],
    ));
    cases.push(case(
        "a label store in a missing folder",
        &[
            &"labels",
            &p("no-such-folder/store.csv"),
            &"--import",
            &tiny_folder(),
            &"--import-labels",
            &tiny_folder().join("labels.csv"),
        ],
        &["no-such-folder/store.csv", "does not exist"],
    ));
    let mut huge_f64 = npy_header("<f8", &[2, 1, 2, 2]);
    for v in [1.0f64, 2.0, 1e300, 4.0, 5.0, 6.0, 7.0, 8.0] {
        huge_f64.extend_from_slice(&v.to_le_bytes());
    }
    cases.push(case(
        "f64 values beyond the f32 range",
        &[&"info", &write(&p("huge_f64.npy"), huge_f64)],
        &["huge_f64.npy", "beyond the f32 range"],
    ));
    cases.push(case(
        "a missing dataset directory",
        &[&"info", &p("no-such-dir/")],
        &["no-such-dir", "no such file"],
    ));

    // Malformed data of every format, through `info` and `train`.
    for name in [
        "bad-magic-images.idx3-ubyte",
        "complex.npy",
        "corrupt_png",
        "fortran.npy",
        "garbage_header.npy",
        "huge-count-images.idx3-ubyte",
        "int64.npy",
        "mismatched_sizes",
        "nan_inf.npy",
        "no_images.npz",
        "shape_exceeds_data.npy",
        "truncated-images.idx3-ubyte.gz",
        "truncated_png",
    ] {
        cases.push(Case {
            name: "malformed fixture",
            args: vec!["info".into(), malformed(name).into_os_string()],
            expect: vec![name.to_string()],
        });
    }
    for name in [
        "garbage.npy",
        "not_a_zip.npz",
        "empty.npy",
        "random.idx3-ubyte",
        "labels_1d-images.idx3-ubyte",
        "signed-images.idx3-ubyte",
        "trailing-images.idx3-ubyte",
        "latents_text.npy",
    ] {
        cases.push(Case {
            name: "hostile fixture",
            args: vec!["info".into(), hostile(name).into_os_string()],
            expect: vec![name.to_string()],
        });
    }
    for (name, path) in [
        (
            "labels_conflicting.csv",
            malformed("labels_conflicting.csv"),
        ),
        (
            "labels_duplicate_id.csv",
            malformed("labels_duplicate_id.csv"),
        ),
        (
            "labels_missing_column.csv",
            malformed("labels_missing_column.csv"),
        ),
        ("labels_unknown_id.csv", malformed("labels_unknown_id.csv")),
        ("labels_bad_header.csv", hostile("labels_bad_header.csv")),
        ("labels_binary.csv", hostile("labels_binary.csv")),
    ] {
        cases.push(Case {
            name: "malformed labels",
            args: vec![
                "info".into(),
                tiny_folder().into_os_string(),
                "--labels".into(),
                path.into_os_string(),
            ],
            expect: vec![name.to_string()],
        });
    }
    cases.push(case(
        "non-numeric parameters",
        &[
            &"info",
            &tiny_folder(),
            &"--parameters",
            &malformed("params_non_numeric.csv"),
        ],
        &["params_non_numeric.csv"],
    ));
    for name in ["bad_config.toml", "unknown_key.toml", "zero_latent.toml"] {
        cases.push(Case {
            name: "bad training config",
            args: vec![
                "train".into(),
                "--data".into(),
                small_images.clone().into_os_string(),
                "--config".into(),
                hostile(name).into_os_string(),
                "--out".into(),
                p(&format!("run-{name}")).into_os_string(),
            ],
            expect: vec![name.to_string()],
        });
    }
    for name in [
        "store_garbage.csv",
        "store_bad_time.csv",
        "store_bad_confidence.csv",
    ] {
        cases.push(Case {
            name: "bad label store",
            args: vec!["labels".into(), hostile(name).into_os_string()],
            expect: vec![name.to_string()],
        });
    }
    let store = write(
        &p("store_with_bad_sidecar.csv"),
        format!("{STORE_HEADER}a.png,cat,user:x,2026-01-01T00:00:00Z,,,,\n"),
    );
    write(&p("store_with_bad_sidecar.classes.json"), "{ not json");
    cases.push(case(
        "label store with a garbage sidecar",
        &[&"labels", &store],
        &["store_with_bad_sidecar"],
    ));
    for name in ["latents_text.npy", "layout_garbage.npy", "huge_member.npy"] {
        cases.push(Case {
            name: "garbage latents for embed",
            args: vec![
                "embed".into(),
                "--latents".into(),
                hostile(name).into_os_string(),
                "--out".into(),
                p(&format!("embed-{name}")).into_os_string(),
            ],
            expect: vec![name.to_string()],
        });
    }
    cases.push(case(
        "eval with a garbage embedding",
        &[
            &"eval",
            &"--embedding",
            &hostile("layout_garbage.npy"),
            &"--labels",
            &malformed("labels_unknown_id.csv"),
        ],
        &["layout_garbage.npy"],
    ));
    cases.push(case(
        "cluster garbage latents",
        &[
            &"cluster",
            &"--latents",
            &hostile("latents_text.npy"),
            &"--k",
            &"2",
            &"--out",
            &p("clusters.csv"),
        ],
        &["latents_text.npy"],
    ));
    cases.push(case(
        "report on a directory that is not a run",
        &[&"report", &tiny_folder(), &"--out", &p("report-out")],
        &["tiny_folder"],
    ));
    cases
}

/// An f32 N×D `.npy` matrix.
fn npy_matrix<const D: usize>(rows: &[[f32; D]]) -> Vec<u8> {
    let mut bytes = npy_header("<f4", &[rows.len() as u64, D as u64]);
    for row in rows {
        for v in row {
            bytes.extend_from_slice(&v.to_le_bytes());
        }
    }
    bytes
}

#[test]
fn hostile_corpus_fails_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let cases = cases(dir.path());
    assert!(cases.len() >= 60, "only {} cases", cases.len());

    // Case 4: this test holds the run directory as a concurrent `sense train` would.
    let locked = dir.path().join("locked-run");
    std::fs::create_dir(&locked).unwrap();
    let lock = File::create(locked.join(".lock")).unwrap();
    use std::os::fd::AsRawFd;
    // SAFETY: flock on a descriptor we own.
    assert_eq!(
        unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) },
        0
    );

    let scratch = dir.path().join("scratch");
    std::fs::create_dir(&scratch).unwrap();
    let mut failures = Vec::new();
    let mut peak: (u64, &str) = (0, "");
    for (i, case) in cases.iter().enumerate() {
        let outcome = run_sense(&case.args, &scratch, &i.to_string());
        if outcome.max_rss_bytes > peak.0 {
            peak = (outcome.max_rss_bytes, case.name);
        }
        let mut problems = Vec::new();
        match (outcome.code, outcome.signal) {
            (Some(1), _) => {}
            (Some(code), _) => problems.push(format!("exit code {code}")),
            (None, signal) => problems.push(format!("killed by signal {signal:?}")),
        }
        for expected in &case.expect {
            if !outcome.stderr.contains(expected.as_str()) {
                problems.push(format!("message lacks {expected:?}"));
            }
        }
        if outcome.stderr.contains("panicked") {
            problems.push("panicked".into());
        }
        if outcome.max_rss_bytes >= MAX_RSS_BYTES {
            problems.push(format!("peak RSS {} MB", outcome.max_rss_bytes >> 20));
        }
        if !problems.is_empty() {
            failures.push(format!(
                "case {i} ({}): {}\n  args: {:?}\n  stderr: {}",
                case.name,
                problems.join(", "),
                case.args,
                outcome.stderr.chars().take(600).collect::<String>()
            ));
        }
    }
    eprintln!(
        "{} hostile cases; largest peak resident set {} MiB ({})",
        cases.len(),
        peak.0 >> 20,
        peak.1
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // The runs that were refused are as they were.
    assert_eq!(
        std::fs::read_to_string(dir.path().join("old-run/metrics.jsonl")).unwrap(),
        "{}\n{}\n{}\n"
    );
    assert!(
        std::fs::read_to_string(dir.path().join("resumed-run/dataset.json"))
            .unwrap()
            .contains("sample:mnist")
    );
    // A failed first import leaves no empty store behind.
    assert!(!dir.path().join("new_store.csv").exists());
    // Nothing was written where training was refused.
    assert!(!dir.path().join("run-filters/dataset.json").exists());
    assert!(!dir.path().join("run-other-store/dataset.json").exists());
    drop(lock);
}

#[test]
fn non_utf8_file_names_keep_distinct_ids() {
    let dir = tempfile::tempdir().unwrap();
    for name in [b"bad\xff.png", b"bad\xfe.png"] {
        write_small_png(
            &dir.path()
                .join(PathBuf::from(OsString::from_vec(name.to_vec()))),
        );
    }
    let ensemble = sense::data::open(dir.path().to_str().unwrap(), &Default::default()).unwrap();
    let ids: Vec<String> = (0..ensemble.len()).map(|i| ensemble.member_id(i)).collect();
    assert_eq!(ids, ["bad\\xfe.png", "bad\\xff.png"]);
    // Labels reach exactly the member they name.
    let labels = write(
        &dir.path().join("labels.csv"),
        "id,label\nbad\\xff.png,lead\n",
    );
    let options = sense::data::OpenOptions {
        labels: Some(labels),
        ..Default::default()
    };
    let ensemble = sense::data::open(dir.path().to_str().unwrap(), &options).unwrap();
    let labels = ensemble.labels.unwrap();
    assert_eq!(labels.class_name(1), Some("lead"));
    assert_eq!(labels.class_name(0), None);
}

#[test]
fn force_replaces_a_run_and_the_lock_is_released() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    std::fs::create_dir(&run).unwrap();
    write(&run.join("metrics.jsonl"), "{}\n{}\n{}\n");
    write(&run.join("notes.txt"), "mine");
    // Eight 32×32 members, one NaN among them.
    let mut data = npy_header("<f4", &[8, 1, 32, 32]);
    for i in 0..8 * 32 * 32 {
        let v = if i == 5 { f32::NAN } else { (i % 7) as f32 };
        data.extend_from_slice(&v.to_le_bytes());
    }
    let data = write(&dir.path().join("nan.npy"), data);
    let scratch = dir.path();
    let args: Vec<OsString> = [
        "train",
        "--data",
        data.to_str().unwrap(),
        "--nan",
        "report",
        "--out",
        run.to_str().unwrap(),
        "--epochs",
        "1",
        "--batch-size",
        "4",
        "--force",
        "--quiet",
    ]
    .iter()
    .map(OsString::from)
    .collect();
    let outcome = run_sense(&args, scratch, "force");
    assert_eq!(outcome.code, Some(0), "{}", outcome.stderr);
    assert!(
        outcome.stderr.contains("1 NaN/Inf values"),
        "{}",
        outcome.stderr
    );
    let metrics = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    assert_eq!(metrics.lines().count(), 1, "{metrics}");
    // --force replaces the run's files, nothing else in the directory.
    assert!(run.join("notes.txt").is_file());
}

#[test]
fn csv_ids_match_exactly_before_trimming() {
    let dir = tempfile::tempdir().unwrap();
    write_small_png(&dir.path().join(" lead.png"));
    write_small_png(&dir.path().join("b.png"));
    let labels = write(
        &dir.path().join("labels.csv"),
        "id,label\n lead.png,lead\nb.png , iron\n",
    );
    let options = sense::data::OpenOptions {
        labels: Some(labels),
        ..Default::default()
    };
    let ensemble = sense::data::open(dir.path().to_str().unwrap(), &options).unwrap();
    assert_eq!(ensemble.member_id(0), " lead.png");
    let labels = ensemble.labels.unwrap();
    assert_eq!(labels.class_name(0), Some("lead"));
    assert_eq!(labels.class_name(1), Some("iron"));
}

#[test]
fn orphan_temp_files_of_a_killed_save_are_removed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("labels.csv");
    drop(sense::labels::LabelStore::create(&path).unwrap());
    let orphan = write(&dir.path().join(".labels.csv.x1y2z3.tmp"), vec![0u8; 1024]);
    let other = write(&dir.path().join(".notes.x1.tmp"), "keep");
    let _store = sense::labels::LabelStore::open(&path).unwrap();
    assert!(!orphan.exists());
    assert!(other.exists());
}

#[test]
fn clusters_report_what_was_written() {
    let dir = tempfile::tempdir().unwrap();
    let constant = write(
        &dir.path().join("constant.npy"),
        npy_matrix(&[[1.0, 1.0]; 6]),
    );
    let args = |latents: &Path, extra: &[&str]| -> Vec<OsString> {
        let mut args: Vec<OsString> = vec![
            "cluster".into(),
            "--latents".into(),
            latents.into(),
            "--out".into(),
            dir.path().join("c.csv").into(),
        ];
        args.extend(extra.iter().map(OsString::from));
        args
    };
    let outcome = run_sense(&args(&constant, &["--k", "3"]), dir.path(), "k3");
    assert_eq!(outcome.code, Some(0), "{}", outcome.stderr);
    assert!(
        outcome.stdout.contains("in 1 clusters"),
        "{}",
        outcome.stdout
    );
    let blobs = write(
        &dir.path().join("blobs.npy"),
        npy_matrix(&[
            [0.0, 0.0],
            [0.1, 0.0],
            [0.0, 0.1],
            [5.0, 5.0],
            [5.1, 5.0],
            [5.0, 5.1],
        ]),
    );
    let outcome = run_sense(&args(&blobs, &["--k-range", "2..3"]), dir.path(), "range");
    assert_eq!(outcome.code, Some(0), "{}", outcome.stderr);
    assert!(outcome.stdout.contains("elbow none"), "{}", outcome.stdout);
}

#[test]
fn nan_report_in_train_names_f64_values_beyond_the_f32_range() {
    let dir = tempfile::tempdir().unwrap();
    // Eight 8×8 f64 members, one value too large for f32 (it becomes Inf when loaded).
    let mut data = npy_header("<f8", &[8, 1, 8, 8]);
    for i in 0..8 * 8 * 8 {
        let v = if i == 9 { 1e300 } else { (i % 5) as f64 };
        data.extend_from_slice(&v.to_le_bytes());
    }
    let data = write(&dir.path().join("huge.npy"), data);
    let run = dir.path().join("run");
    let args: Vec<OsString> = [
        "train",
        "--data",
        data.to_str().unwrap(),
        "--nan",
        "report",
        "--out",
        run.to_str().unwrap(),
        "--epochs",
        "1",
        "--batch-size",
        "4",
        "--quiet",
    ]
    .iter()
    .map(OsString::from)
    .collect();
    let outcome = run_sense(&args, dir.path(), "f64 --nan report");
    assert_eq!(outcome.code, Some(0), "{}", outcome.stderr);
    assert!(
        outcome
            .stderr
            .contains("1 NaN/Inf values (or f64 values beyond the f32 range)"),
        "{}",
        outcome.stderr
    );
}
