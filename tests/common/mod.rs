//! Helpers shared by integration tests.

use sense::labels::LabelStore;
use std::fmt::Write;

/// Everything a store holds, as text, to compare states.
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
