//! Helpers shared by integration tests.

use npyz::WriterBuilder;
use sense::labels::LabelStore;
use std::fmt::Write;
use std::path::Path;

/// Writes the first 300 MNIST digits of the embedded sample as `u8 [300, 1, 28, 28]`
/// (`digits.npy`) and an `id,label` CSV (`labels.csv`) for the first `labelled` of them.
/// Each test binary uses a subset of these helpers.
#[allow(dead_code)]
pub fn write_digits(dir: &Path, labelled: usize) -> (String, String) {
    let ensemble = sense::samples::open_with("mnist", Some(300), 3).unwrap();
    let mut pixels = Vec::with_capacity(300 * 784);
    let mut member = vec![0.0f32; 784];
    for i in 0..300 {
        ensemble.source.read_f32(i, &mut member).unwrap();
        pixels.extend(member.iter().map(|&v| v as u8));
    }
    let npy = dir.join("digits.npy");
    let mut out = std::io::BufWriter::new(std::fs::File::create(&npy).unwrap());
    let mut writer = npyz::WriteOptions::new()
        .default_dtype()
        .shape(&[300, 1, 28, 28])
        .writer(&mut out)
        .begin_nd()
        .unwrap();
    writer.extend(pixels).unwrap();
    writer.finish().unwrap();
    drop(out);

    let truth = ensemble.ground_truth.as_ref().unwrap();
    let mut csv = String::from("id,label\n");
    for i in 0..labelled {
        csv += &format!("{},{}\n", i, truth.class_name(i).unwrap());
    }
    let labels = dir.join("labels.csv");
    std::fs::write(&labels, csv).unwrap();
    (npy.display().to_string(), labels.display().to_string())
}

/// Everything a store holds, as text, to compare states.
#[allow(dead_code)]
pub fn dump(store: &LabelStore) -> String {
    let mut out = String::new();
    for class in store.classes() {
        let _ = writeln!(
            out,
            "class {} {} {:?}",
            class.name, class.colour, class.aliases
        );
    }
    for (id, manual, pseudo) in store.members() {
        let _ = write!(out, "{id}:");
        if let Some(m) = manual {
            let _ = write!(out, " manual={} {:?}", m.class, m.provenance);
        }
        if let Some(p) = pseudo {
            let _ = write!(
                out,
                " pseudo={}@{} {:?}",
                p.class, p.confidence, p.provenance
            );
        }
        out.push('\n');
    }
    out
}
