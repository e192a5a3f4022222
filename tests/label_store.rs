//! The label store: persistence, provenance, undo/redo, classes, errors, snapshots.

mod common;
use common::dump;
use sense::data::ClassLabels;
use sense::labels::{
    CSV_HEADER, Colour, LabelSnapshot, LabelStore, Provenance, Source, palette_colour,
};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, UNIX_EPOCH};

fn user_at(name: &str, secs: u64) -> Provenance {
    Provenance::at(
        Source::User { name: name.into() },
        UNIX_EPOCH + Duration::from_millis(secs * 1000 + 250),
    )
}

fn run_at(run_id: &str, secs: u64) -> Provenance {
    Provenance::at(
        Source::Classifier {
            run_id: run_id.into(),
        },
        UNIX_EPOCH + Duration::from_secs(secs),
    )
}

fn ids(range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| format!("m{i:04}")).collect()
}

/// What is on disk now, read without disturbing the open store.
fn dump_disk(path: &Path) -> String {
    dump(&LabelStore::open_read_only(path).expect("store on disk loads"))
}

struct Fixture {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("labels.csv");
    Fixture { _dir: dir, path }
}

/// A store with manual labels in classes a, b, c and pseudo-labels on others.
fn populated(path: &Path) -> LabelStore {
    let mut store = LabelStore::create(path).unwrap();
    store
        .set_manual(&ids(0..4), "a", user_at("alice", 10))
        .unwrap();
    store
        .set_manual(&ids(4..6), "b", user_at("bob", 20))
        .unwrap();
    store
        .set_manual(&ids(6..7), "c", user_at("alice", 30))
        .unwrap();
    let pseudo: Vec<(String, &str, f32)> = vec![
        ("m0003".into(), "b", 0.5),
        ("m0010".into(), "a", 0.95),
        ("m0011".into(), "b", 0.9),
        ("m0012".into(), "c", 0.3),
    ];
    store
        .set_pseudo(
            pseudo.iter().map(|(i, c, p)| (i, c, *p)),
            run_at("run-1", 40),
        )
        .unwrap();
    store
}

#[test]
fn round_trip_keeps_labels_and_provenance() {
    let f = fixture();
    let before = {
        let store = populated(&f.path);
        assert_eq!(store.len(), 10);
        dump(&store)
    };
    let store = LabelStore::open(&f.path).unwrap();
    assert_eq!(dump(&store), before);

    let m = store.manual("m0004").unwrap();
    assert_eq!(m.class, "b");
    assert_eq!(m.provenance, &user_at("bob", 20));
    let p = store.pseudo("m0003").unwrap();
    assert_eq!((p.class, p.confidence), ("b", 0.5));
    assert_eq!(
        p.provenance.source,
        Source::Classifier {
            run_id: "run-1".into()
        }
    );
    assert_eq!(store.manual("m0003").unwrap().class, "a");
    assert!(store.manual("m0010").is_none());
    assert!(store.manual("nobody").is_none() && store.pseudo("nobody").is_none());
}

#[test]
fn csv_is_pandas_friendly() {
    let f = fixture();
    drop(populated(&f.path));
    let text = std::fs::read_to_string(&f.path).unwrap();
    let mut lines = text.lines();
    assert_eq!(
        lines.next().unwrap(),
        "id,manual_label,manual_source,manual_time,pseudo_label,pseudo_confidence,pseudo_source,pseudo_time"
    );
    assert_eq!(CSV_HEADER.join(","), text.lines().next().unwrap());
    // One row per labelled member, sorted by id, empty cells for "none".
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), 10);
    assert_eq!(
        rows[3],
        "m0003,a,user:alice,1970-01-01T00:00:10.250Z,b,0.5,classifier:run-1,1970-01-01T00:00:40.000Z"
    );
    assert_eq!(
        rows[7],
        "m0010,,,,a,0.95,classifier:run-1,1970-01-01T00:00:40.000Z"
    );
    let json: serde_json::Value = serde_json::from_slice(
        &std::fs::read(f.path.with_file_name("labels.classes.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(json["classes"][0]["name"], "a");
    assert_eq!(json["classes"][0]["colour"], "#1f77b4");
    assert_eq!(json["classes"][2]["colour"], "#2ca02c");
}

#[test]
fn ids_with_commas_quotes_and_newlines_round_trip() {
    let f = fixture();
    let odd = ["a,b", "say \"hi\"", "two\nlines", "ünïcode", " padded "];
    {
        let mut store = LabelStore::create(&f.path).unwrap();
        store
            .set_manual(&odd, "class, with comma", user_at("x", 1))
            .unwrap();
    }
    let store = LabelStore::open(&f.path).unwrap();
    for id in odd {
        assert_eq!(
            store.manual(id).unwrap().class,
            "class, with comma",
            "{id:?}"
        );
    }
}

#[test]
fn every_operation_undoes_and_redoes_on_disk_too() {
    let f = fixture();
    let mut store = populated(&f.path);
    let labels = ClassLabels {
        classes: vec!["a".into(), "z".into()],
        per_member: vec![Some(1), None, Some(0)],
    };
    type Op = Box<dyn Fn(&mut LabelStore)>;
    let ops: Vec<(&str, Op)> = vec![
        (
            "relabel",
            Box::new(|s| {
                s.set_manual(&ids(2..5), "c", user_at("carol", 50)).unwrap();
            }),
        ),
        (
            "relabel to new class",
            Box::new(|s| {
                s.set_manual(&["m0020"], "new", user_at("carol", 51))
                    .unwrap();
            }),
        ),
        (
            "clear",
            Box::new(|s| {
                s.clear_manual(&ids(0..2)).unwrap();
            }),
        ),
        (
            "pseudo",
            Box::new(|s| {
                s.set_pseudo(
                    [("m0001", "c", 0.7), ("m0030", "a", 1.0)],
                    run_at("run-2", 60),
                )
                .unwrap();
            }),
        ),
        (
            "clear pseudo",
            Box::new(|s| {
                s.clear_pseudo().unwrap();
            }),
        ),
        (
            "import",
            Box::new(move |s| {
                s.import_manual(
                    &labels,
                    |i| format!("m{i:04}"),
                    Provenance::import("/data/l.csv"),
                )
                .unwrap();
            }),
        ),
        (
            "add class",
            Box::new(|s| {
                s.add_class("d").unwrap();
            }),
        ),
        (
            "rename",
            Box::new(|s| {
                s.rename_class("a", "alpha").unwrap();
            }),
        ),
        (
            "merge",
            Box::new(|s| {
                s.merge_classes(&["b", "c"], "a").unwrap();
            }),
        ),
        (
            "colour",
            Box::new(|s| {
                s.set_class_colour("b", Colour([1, 2, 3])).unwrap();
            }),
        ),
    ];
    for (name, op) in &ops {
        let before = dump(&store);
        let revision = store.revision();
        op(&mut store);
        let after = dump(&store);
        assert_ne!(before, after, "{name} changed nothing");
        assert_eq!(dump_disk(&f.path), after, "{name} not saved");
        assert!(store.undo_description().is_some());

        assert!(store.undo().unwrap(), "{name}");
        assert_eq!(dump(&store), before, "undo {name}");
        assert_eq!(dump_disk(&f.path), before, "undo {name} not saved");
        assert!(store.can_redo());

        assert!(store.redo().unwrap(), "{name}");
        assert_eq!(dump(&store), after, "redo {name}");
        assert_eq!(dump_disk(&f.path), after, "redo {name} not saved");
        assert_eq!(store.revision(), revision + 3);

        // Leave the store as before for the next operation.
        assert!(store.undo().unwrap());
    }
    // Undo walks back through the whole session: populated() made 4 changes.
    while store.undo().unwrap() {}
    assert!(!store.can_undo());
    assert_eq!(dump_disk(&f.path), "");
    assert!(!store.undo().unwrap());
}

#[test]
fn a_new_change_clears_redo() {
    let f = fixture();
    let mut store = populated(&f.path);
    store.undo().unwrap();
    assert!(store.can_redo());
    store.set_manual(&["m0100"], "a", user_at("x", 5)).unwrap();
    assert!(!store.can_redo());
    assert!(!store.redo().unwrap());
}

#[test]
fn changes_that_change_nothing_are_not_recorded() {
    let f = fixture();
    let mut store = populated(&f.path);
    let revision = store.revision();
    assert_eq!(store.clear_manual(&["m0050"]).unwrap(), None);
    assert_eq!(store.rename_class("a", "a").unwrap(), None);
    let colour = store.class_colour("a").unwrap();
    assert_eq!(store.set_class_colour("a", colour).unwrap(), None);
    // Relabelling with identical provenance is a no-op too.
    assert_eq!(
        store
            .set_manual(&ids(0..4), "a", user_at("alice", 10))
            .unwrap(),
        None
    );
    assert_eq!(store.revision(), revision);
    assert_eq!(store.undo_description(), Some("set 4 pseudo-labels"));
}

#[test]
fn colours_are_stable_across_renames_merges_and_sessions() {
    let f = fixture();
    {
        let mut store = LabelStore::create(&f.path).unwrap();
        for name in ["a", "b", "c"] {
            store.add_class(name).unwrap();
        }
        assert_eq!(store.class_colour("a"), Some(palette_colour(0)));
        assert_eq!(store.class_colour("b"), Some(palette_colour(1)));
        assert_eq!(store.class_colour("c"), Some(palette_colour(2)));
        store.rename_class("a", "apple").unwrap();
        store.merge_classes(&["b"], "c").unwrap();
        assert_eq!(store.class_colour("apple"), Some(palette_colour(0)));
        assert_eq!(store.class_colour("c"), Some(palette_colour(2)));
        // A former name still finds its (current) class and colour.
        assert_eq!(store.class("a").unwrap().name, "apple");
        assert_eq!(store.class_colour("b"), Some(palette_colour(2)));
        // A new class takes the first free palette colour, not a colour in use.
        store.add_class("d").unwrap();
        assert_eq!(store.class_colour("d"), Some(palette_colour(1)));
        store.set_class_colour("d", Colour([10, 20, 30])).unwrap();
    }
    let store = LabelStore::open(&f.path).unwrap();
    let names: Vec<_> = store
        .classes()
        .map(|c| (c.name.as_str(), c.colour))
        .collect();
    assert_eq!(
        names,
        [
            ("apple", palette_colour(0)),
            ("c", palette_colour(2)),
            ("d", Colour([10, 20, 30]))
        ]
    );
    assert_eq!(store.class("apple").unwrap().aliases, ["a"]);
    assert_eq!(store.class("c").unwrap().aliases, ["b"]);
}

#[test]
fn merge_moves_manual_and_pseudo_labels_and_keeps_provenance() {
    let f = fixture();
    let mut store = populated(&f.path);
    store.merge_classes(&["b", "c"], "a").unwrap();
    assert_eq!(store.classes().count(), 1);
    assert_eq!(store.class("a").unwrap().aliases, ["b", "c"]);
    let m = store.manual("m0005").unwrap();
    assert_eq!(m.class, "a");
    assert_eq!(m.provenance, &user_at("bob", 20));
    assert_eq!(store.pseudo("m0012").unwrap().class, "a");
    assert_eq!(store.pseudo("m0012").unwrap().confidence, 0.3);
    let counts = store.class_counts(0.9);
    assert_eq!(
        (
            counts[0].manual,
            counts[0].pseudo,
            counts[0].pseudo_confident
        ),
        (7, 4, 2)
    );

    assert!(store.merge_classes(&["a"], "a").is_err());
    assert!(store.merge_classes(&["nope"], "a").is_err());
    assert!(store.merge_classes(&[], "a").is_err());
}

#[test]
fn class_operations_refuse_bad_names() {
    let f = fixture();
    let mut store = populated(&f.path);
    let before = dump(&store);
    for result in [
        store.add_class("a"),
        store.add_class(""),
        store.add_class(" a"),
        store.add_class("tab\there"),
        store.rename_class("nope", "x"),
        store.rename_class("a", "b"),
        store.rename_class("a", ""),
        store.set_class_colour("nope", Colour([0, 0, 0])),
        store.set_manual(&["m0001"], "", user_at("x", 1)),
        store.set_manual(&[] as &[&str], "a", user_at("x", 1)),
        store.set_manual(&[""], "a", user_at("x", 1)),
    ] {
        let err = result.unwrap_err();
        assert_eq!(err.path, f.path, "{err}");
    }
    assert_eq!(dump(&store), before);
    assert_eq!(dump_disk(&f.path), before);
}

#[test]
fn set_pseudo_replaces_the_whole_layer_and_validates_first() {
    let f = fixture();
    let mut store = populated(&f.path);
    store.rename_class("b", "beta").unwrap();
    // A run that started before the rename still says "b".
    store
        .set_pseudo(
            [("m0011", "b", 0.8), ("m0099", "a", 0.6)],
            run_at("run-2", 70),
        )
        .unwrap();
    assert!(
        store.pseudo("m0010").is_none(),
        "members not in the run lose their pseudo-label"
    );
    assert_eq!(store.pseudo("m0011").unwrap().class, "beta");
    assert_eq!(store.pseudo("m0099").unwrap().confidence, 0.6);
    // Manual labels are untouched.
    assert_eq!(store.manual("m0003").unwrap().class, "a");

    let before = dump(&store);
    let bad: [&[(&str, &str, f32)]; 5] = [
        &[("m0001", "zzz", 0.5)],
        &[("m0001", "a", 1.5)],
        &[("m0001", "a", f32::NAN)],
        &[("m0001", "a", -0.1)],
        &[("m0001", "a", 0.5), ("m0001", "a", 0.6)],
    ];
    for entries in bad {
        let err = store
            .set_pseudo(entries.iter().copied(), run_at("bad", 80))
            .unwrap_err();
        assert_eq!(err.path, f.path);
    }
    assert_eq!(dump(&store), before);
    assert_eq!(dump_disk(&f.path), before);
}

#[test]
fn import_manual_adds_classes_in_file_order() {
    let f = fixture();
    let mut store = LabelStore::create(&f.path).unwrap();
    store.add_class("seven").unwrap();
    let labels = ClassLabels {
        classes: (0..10).map(|d| d.to_string()).collect(),
        per_member: vec![Some(3), None, Some(9), Some(3)],
    };
    let provenance = Provenance::import("/data/train-labels.idx");
    store
        .import_manual(&labels, |i| format!("img{i}"), provenance.clone())
        .unwrap();
    let names: Vec<_> = store.classes().map(|c| c.name.clone()).collect();
    assert_eq!(names[0], "seven");
    assert_eq!(names[1..], labels.classes[..]);
    assert_eq!(store.manual("img0").unwrap().class, "3");
    assert!(store.manual("img1").is_none());
    assert_eq!(store.manual("img2").unwrap().provenance, &provenance);
    assert_eq!(store.class_counts(0.9)[4].manual, 2);

    let broken = ClassLabels {
        classes: vec!["x".into()],
        per_member: vec![Some(1)],
    };
    assert!(
        store
            .import_manual(&broken, |i| format!("img{i}"), provenance.clone())
            .is_err()
    );
    let dup = ClassLabels {
        classes: vec!["x".into()],
        per_member: vec![Some(0), Some(0)],
    };
    assert!(
        store
            .import_manual(&dup, |_| "same".into(), provenance)
            .is_err()
    );
    assert!(store.class("x").is_none(), "failed imports add no classes");
}

#[test]
fn aliases_resolve_a_csv_written_before_a_rename() {
    let f = fixture();
    let mut store = populated(&f.path);
    let old_csv = std::fs::read(&f.path).unwrap();
    store.rename_class("a", "alpha").unwrap();
    store.merge_classes(&["c"], "b").unwrap();
    let expected = dump(&store);
    drop(store);
    // A backup from before the rename and merge is put back.
    std::fs::write(&f.path, &old_csv).unwrap();
    assert_eq!(dump(&LabelStore::open(&f.path).unwrap()), expected);
}

#[test]
fn crash_between_sidecar_and_csv_loads_the_acknowledged_state() {
    let f = fixture();
    let mut store = populated(&f.path);
    store.rename_class("a", "alpha").unwrap();
    let acknowledged = dump(&store);
    let acknowledged_csv = std::fs::read(&f.path).unwrap();
    // Undoing the rename drops the alias, so the old CSV's "alpha" would not resolve by name.
    store.undo().unwrap();
    drop(store);
    // Simulate dying after the sidecar rename but before the CSV rename.
    std::fs::write(&f.path, &acknowledged_csv).unwrap();
    assert_eq!(dump(&LabelStore::open(&f.path).unwrap()), acknowledged);
}

#[test]
fn a_member_change_that_recreates_an_older_csv_keeps_the_current_classes() {
    let f = fixture();
    let mut store = populated(&f.path);
    store.set_manual(&["m0500"], "x", user_at("x", 1)).unwrap();
    // The CSV is now byte-identical to the one before class x existed.
    store.clear_manual(&["m0500"]).unwrap();
    let expected = dump(&store);
    assert!(expected.contains("class x"));
    drop(store);
    assert_eq!(dump(&LabelStore::open(&f.path).unwrap()), expected);
}

#[test]
fn csv_without_sidecar_infers_classes() {
    let f = fixture();
    std::fs::write(
        &f.path,
        "id,manual_label,pseudo_label,pseudo_confidence\nx,cat,,\ny,,dog,0.25\nz,,,\nw,dog,cat,1\n",
    )
    .unwrap();
    let mut store = LabelStore::open(&f.path).unwrap();
    let names: Vec<_> = store.classes().map(|c| c.name.clone()).collect();
    assert_eq!(names, ["cat", "dog"]);
    assert_eq!(store.len(), 3, "rows without labels are skipped");
    let m = store.manual("x").unwrap();
    assert_eq!(m.provenance.time, None);
    assert_eq!(m.provenance.source, Source::Other(String::new()));
    // The first change writes the sidecar and the full header.
    store.add_class("bird").unwrap();
    drop(store);
    assert!(f.path.with_file_name("labels.classes.json").exists());
    let text = std::fs::read_to_string(&f.path).unwrap();
    assert!(text.starts_with(&CSV_HEADER.join(",")));
    assert_eq!(dump_disk(&f.path).lines().count(), 3 + 3);
}

/// Writes a CSV next to a valid sidecar (classes a, b) and returns the error message.
fn load_error(csv: &str) -> String {
    let f = fixture();
    {
        let mut store = LabelStore::create(&f.path).unwrap();
        store.add_class("a").unwrap();
        store.add_class("b").unwrap();
        store.rename_class("b", "bee").unwrap();
    }
    std::fs::write(&f.path, csv).unwrap();
    match LabelStore::open(&f.path) {
        Ok(_) => panic!("loaded bad CSV:\n{csv}"),
        Err(e) => {
            assert!(e.path.ends_with("labels.csv") || e.path.ends_with("labels.classes.json"));
            e.to_string()
        }
    }
}

#[test]
fn bad_rows_are_errors_naming_file_line_and_problem() {
    let h = "id,manual_label,manual_source,manual_time,pseudo_label,pseudo_confidence,pseudo_source,pseudo_time\n";
    let cases = [
        ("m1,a,,,,,,\nm2,zzz,,,,,,\n", "line 3: unknown label 'zzz'"),
        ("m1,,,,zzz,0.5,,\n", "line 2: unknown label 'zzz'"),
        ("m1,,,,a,abc,,\n", "line 2: pseudo_confidence 'abc'"),
        ("m1,,,,a,NaN,,\n", "line 2: pseudo_confidence 'NaN'"),
        ("m1,,,,a,1.5,,\n", "line 2: pseudo_confidence '1.5'"),
        ("m1,,,,a,-0.2,,\n", "line 2: pseudo_confidence '-0.2'"),
        ("m1,,,,a,,,\n", "line 2: pseudo_confidence ''"),
        ("m1,a,,,,,,\nm2,a,,\n", "line 3: malformed row"),
        (",a,,,,,,\n", "line 2: empty id"),
        ("m1,a,,yesterday,,,,\n", "line 2: bad time 'yesterday'"),
        (
            "m1,a,,,,,,\nm2,a,,,,,,\nm1,bee,,,,,,\n",
            "line 4: duplicate id 'm1' (first on line 2)",
        ),
    ];
    for (rows, expected) in cases {
        let message = load_error(&format!("{h}{rows}"));
        assert!(message.contains("labels.csv"), "{message}");
        assert!(
            message.contains(expected),
            "expected {expected:?} in {message:?}"
        );
    }
    let message = load_error("id,manual_label,notes\nm1,a,hello\n");
    assert!(
        message.contains("line 1: unknown column 'notes'"),
        "{message}"
    );
    let message = load_error("manual_label\na\n");
    assert!(message.contains("no 'id' column"), "{message}");
}

#[test]
fn invalid_utf8_and_bad_sidecars_are_errors() {
    let f = fixture();
    drop(populated(&f.path));
    let mut bytes = std::fs::read(&f.path).unwrap();
    bytes.extend_from_slice(b"m9999,\xff\xfe,,,,,,\n");
    std::fs::write(&f.path, &bytes).unwrap();
    let err = LabelStore::open(&f.path).unwrap_err().to_string();
    assert!(
        err.contains("labels.csv") && err.contains("not valid UTF-8"),
        "{err}"
    );

    let f = fixture();
    drop(populated(&f.path));
    let sidecar = f.path.with_file_name("labels.classes.json");
    let good = std::fs::read_to_string(&sidecar).unwrap();
    for (bad, expected) in [
        ("{".to_string(), "not a valid class sidecar"),
        (good.replace("#1f77b4", "blue"), "bad colour 'blue'"),
        (good.replace("\"b\"", "\"a\""), "name 'a' is used by both"),
        (
            good.replace("\"version\": 1", "\"version\": 99"),
            "newer SENSE",
        ),
        (
            good.replace("sense-label-classes", "other"),
            "format is 'other'",
        ),
    ] {
        std::fs::write(&sidecar, &bad).unwrap();
        let err = LabelStore::open(&f.path).unwrap_err().to_string();
        assert!(
            err.contains("labels.classes.json") && err.contains(expected),
            "{err}"
        );
    }
}

#[test]
fn snapshot_weights_manual_and_confident_pseudo_labels() {
    let f = fixture();
    let mut store = populated(&f.path);
    let snapshot = store.snapshot(0.9);
    let names: Vec<_> = snapshot.classes().iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["a", "b", "c"]);
    // Manual beats pseudo.
    let m3 = snapshot.get("m0003").unwrap();
    assert_eq!((m3.class, m3.weight, m3.manual), (0, 1.0, true));
    // Pseudo at or above the threshold, weighted by confidence.
    let p10 = snapshot.get("m0010").unwrap();
    assert_eq!((p10.class, p10.weight, p10.manual), (0, 0.95, false));
    assert_eq!(snapshot.get("m0011").unwrap().weight, 0.9);
    // Below the threshold: no training label.
    assert!(snapshot.get("m0012").is_none());
    assert_eq!(snapshot.len(), 9);
    assert_eq!(store.snapshot(0.0).len(), 10);
    assert_eq!(store.snapshot(f32::NAN).len(), 7);

    let by_index = snapshot.for_members(13, |i| format!("m{i:04}"));
    assert_eq!(by_index.iter().flatten().count(), 9);
    assert_eq!(by_index[5].unwrap().class, 1);

    // The snapshot does not change with the store, and crosses threads.
    let revision = snapshot.revision();
    store.merge_classes(&["b", "c"], "a").unwrap();
    assert!(store.revision() > revision);
    let handle = std::thread::spawn(move || {
        let snapshot: LabelSnapshot = snapshot;
        (
            snapshot.classes().len(),
            snapshot.get("m0005").unwrap().class,
        )
    });
    assert_eq!(handle.join().unwrap(), (3, 1));
    assert_eq!(store.snapshot(0.9).get("m0005").unwrap().class, 0);
}

#[test]
fn counts_per_class() {
    let f = fixture();
    let store = populated(&f.path);
    let counts: Vec<_> = store
        .class_counts(0.9)
        .into_iter()
        .map(|c| (c.name, c.manual, c.pseudo, c.pseudo_confident))
        .collect();
    assert_eq!(
        counts,
        [
            ("a".into(), 4, 1, 1),
            ("b".into(), 2, 2, 1),
            ("c".into(), 1, 1, 0)
        ]
    );
}

#[test]
fn one_writer_at_a_time_and_read_only_refuses_changes() {
    let f = fixture();
    let store = populated(&f.path);
    let err = LabelStore::open(&f.path).unwrap_err().to_string();
    assert!(err.contains("open for writing elsewhere"), "{err}");
    let mut reader = LabelStore::open_read_only(&f.path).unwrap();
    assert!(reader.add_class("x").is_err());
    assert!(reader.undo().is_err());
    drop(store);
    assert!(
        LabelStore::create(&f.path).is_err(),
        "create never overwrites a store"
    );
    LabelStore::open_or_create(&f.path).unwrap();
}

#[test]
fn no_temporary_files_are_left_behind() {
    let f = fixture();
    drop(populated(&f.path));
    let mut names: Vec<String> = std::fs::read_dir(f.path.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [".labels.csv.lock", "labels.classes.json", "labels.csv"]
    );
}

/// 135,000 members with pseudo-labels: time one relabel (a full rewrite of both files).
#[test]
fn relabel_time_with_135k_members() {
    const MEMBERS: usize = 135_000;
    let f = fixture();
    let mut store = LabelStore::create(&f.path).unwrap();
    let all = ids(0..MEMBERS);
    let classes: Vec<String> = (0..10).map(|c| format!("class {c}")).collect();
    store
        .set_manual(&all[..2000], &classes[0], user_at("alice", 1))
        .unwrap();
    for class in &classes[1..] {
        store.add_class(class).unwrap();
    }
    let start = Instant::now();
    store
        .set_pseudo(
            all.iter()
                .enumerate()
                .map(|(i, id)| (id, &classes[i % 10], (i % 1000) as f32 / 999.0)),
            run_at("run-1", 2),
        )
        .unwrap();
    let pseudo_secs = start.elapsed().as_secs_f64();

    let mut relabel_ms = Vec::new();
    for round in 0..5 {
        let selection = &all[round * 500..round * 500 + 300];
        let start = Instant::now();
        store
            .set_manual(
                selection,
                &classes[round + 1],
                user_at("bob", 3 + round as u64),
            )
            .unwrap();
        relabel_ms.push(start.elapsed().as_secs_f64() * 1e3);
    }
    let start = Instant::now();
    store.undo().unwrap();
    let undo_ms = start.elapsed().as_secs_f64() * 1e3;
    let start = Instant::now();
    let snapshot = store.snapshot(0.9);
    let snapshot_ms = start.elapsed().as_secs_f64() * 1e3;
    drop(store);
    let start = Instant::now();
    let store = LabelStore::open(&f.path).unwrap();
    let open_ms = start.elapsed().as_secs_f64() * 1e3;
    let csv_mib = std::fs::metadata(&f.path).unwrap().len() as f64 / (1 << 20) as f64;
    println!(
        "135k members ({csv_mib:.1} MiB CSV): pseudo batch {:.0} ms, relabel {:?} ms, undo {undo_ms:.0} ms, \
         snapshot {snapshot_ms:.0} ms, open {open_ms:.0} ms",
        pseudo_secs * 1e3,
        relabel_ms.iter().map(|ms| ms.round()).collect::<Vec<_>>()
    );
    assert_eq!(store.len(), MEMBERS);
    // Manual labels on the first 2000; 10% of the other pseudo-labels reach 0.9.
    assert_eq!(snapshot.len(), 2000 + (MEMBERS - 2000) / 10);
}

#[test]
fn sense_labels_prints_counts_per_class() {
    let f = fixture();
    let _open_in_the_app = populated(&f.path);
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_sense"))
        .arg("labels")
        .arg(&f.path)
        .output()
        .unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(output.status.success(), "{stdout}");
    let lines: Vec<Vec<&str>> = stdout
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        lines[0],
        ["class", "colour", "manual", "pseudo", "pseudo", "≥", "0.9"]
    );
    assert_eq!(lines[1], ["a", "#1f77b4", "4", "1", "1"]);
    assert_eq!(lines[2], ["b", "#ff7f0e", "2", "2", "1"]);
    assert_eq!(lines[3], ["c", "#2ca02c", "1", "1", "0"]);
    assert_eq!(lines[4], ["total", "7", "4", "2"]);
    assert!(stdout.contains("10 members labelled, 3 classes"));
    // Columns line up.
    let text: Vec<&str> = stdout.lines().collect();
    let end = |line: &str| line.chars().count();
    assert!(text[..5].iter().all(|l| end(l) == end(text[0])), "{stdout}");

    let missing = std::process::Command::new(env!("CARGO_BIN_EXE_sense"))
        .args(["labels", "/nonexistent/labels.csv"])
        .output()
        .unwrap();
    assert!(!missing.status.success());
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(
        stderr.contains("/nonexistent/labels.csv") && stderr.contains("no such file"),
        "{stderr}"
    );
}
