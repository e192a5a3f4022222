//! The label CSV: one row per member with a label, readable by pandas as is.
//!
//! `id,manual_label,manual_source,manual_time,pseudo_label,pseudo_confidence,pseudo_source,pseudo_time`
//!
//! Empty cells mean "none". Times are RFC 3339 UTC with milliseconds. A hand-written CSV may
//! leave out any column but `id`; columns it does not know are refused (they would be lost on
//! the next save).

use super::classes::{ClassId, ClassTable, check_name};
use super::members::{Manual, MemberLabels, Members, Pseudo};
use super::provenance::{Provenance, Source, format_time, parse_time};
use crate::error::{DataError, DataResult};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

pub const HEADER: [&str; 8] = [
    "id",
    "manual_label",
    "manual_source",
    "manual_time",
    "pseudo_label",
    "pseudo_confidence",
    "pseudo_source",
    "pseudo_time",
];

const ID: usize = 0;
const MANUAL_LABEL: usize = 1;
const MANUAL_SOURCE: usize = 2;
const MANUAL_TIME: usize = 3;
const PSEUDO_LABEL: usize = 4;
const PSEUDO_CONFIDENCE: usize = 5;
const PSEUDO_SOURCE: usize = 6;
const PSEUDO_TIME: usize = 7;

/// Serialises every labelled member, sorted by id.
///
/// Hand-written rather than through `csv::Writer`: this runs on every change, and with class
/// names and provenance quoted and formatted once (they are shared by many rows) a row is a
/// handful of byte copies. `decode` reads it back with the `csv` crate.
pub(crate) fn encode(members: &Members, classes: &ClassTable) -> Vec<u8> {
    // Provenance is shared by all members one change touched: format each only once, and
    // look it up by pointer (neighbouring rows mostly share it, hence the memo).
    let mut formatted: Vec<(Vec<u8>, String)> = Vec::new();
    let mut index_of: HashMap<*const Provenance, usize> = HashMap::new();
    let mut memo: Option<(*const Provenance, usize)> = None;
    let mut slot = |p: &Arc<Provenance>| -> usize {
        let ptr = Arc::as_ptr(p);
        if let Some((last, index)) = memo
            && last == ptr
        {
            return index;
        }
        let index = *index_of.entry(ptr).or_insert_with(|| {
            let time = p.time.map(format_time).unwrap_or_default();
            formatted.push((quoted(&p.source.to_string()), time));
            formatted.len() - 1
        });
        memo = Some((ptr, index));
        index
    };
    // (manual, pseudo) provenance slots per member, in order.
    let slots: Vec<[usize; 2]> = members
        .values()
        .map(|labels| {
            [
                labels.manual.as_ref().map_or(0, |m| slot(&m.provenance)),
                labels.pseudo.as_ref().map_or(0, |p| slot(&p.provenance)),
            ]
        })
        .collect();
    let names: Vec<Vec<u8>> = (0..classes.slot_count())
        .map(|i| {
            quoted(
                classes
                    .get(ClassId(i as u32))
                    .map_or("", |c| c.name.as_str()),
            )
        })
        .collect();
    let name = |id: ClassId| names.get(id.index()).map_or(&[][..], Vec::as_slice);
    let provenance = |slot: usize| {
        let (source, time) = &formatted[slot];
        (source.as_slice(), time.as_bytes())
    };

    let mut out = Vec::with_capacity(80 * (members.len() + 1));
    out.extend_from_slice(HEADER.join(",").as_bytes());
    out.push(b'\n');
    let mut confidence = ryu::Buffer::new();
    for ((id, labels), [manual_slot, pseudo_slot]) in members.iter().zip(slots) {
        let manual: [&[u8]; 3] = match &labels.manual {
            Some(m) => {
                let (source, time) = provenance(manual_slot);
                [name(m.class), source, time]
            }
            None => [b""; 3],
        };
        let pseudo: [&[u8]; 4] = match &labels.pseudo {
            Some(p) => {
                let (source, time) = provenance(pseudo_slot);
                // Shortest text that reads back as exactly this f32 (confidences are finite).
                let confidence = confidence.format_finite(p.confidence).as_bytes();
                [name(p.class), confidence, source, time]
            }
            None => [b""; 4],
        };
        push_quoted(&mut out, id);
        for field in manual.into_iter().chain(pseudo) {
            out.push(b',');
            out.extend_from_slice(field);
        }
        out.push(b'\n');
    }
    out
}

/// `text` as a CSV field: quoted (with inner quotes doubled) only when it has to be.
fn quoted(text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    push_quoted(&mut out, text);
    out
}

fn push_quoted(out: &mut Vec<u8>, text: &str) {
    if !text
        .bytes()
        .any(|b| matches!(b, b',' | b'"' | b'\n' | b'\r'))
    {
        out.extend_from_slice(text.as_bytes());
        return;
    }
    out.push(b'"');
    for part in text.split_inclusive('"') {
        out.extend_from_slice(part.as_bytes());
        if part.ends_with('"') {
            out.push(b'"');
        }
    }
    out.push(b'"');
}

/// How labels in the CSV become classes.
pub(crate) enum Classes<'a> {
    /// Resolve against these classes (names and former names); anything else is an error.
    /// The path is the sidecar's, for the message.
    Known(&'a ClassTable, &'a Path),
    /// No sidecar: create classes in first-seen order.
    Infer(&'a mut ClassTable),
}

/// Label text → class, remembering the last answer (neighbouring rows mostly repeat it).
struct ClassResolver<'a> {
    classes: Classes<'a>,
    names: HashMap<String, ClassId>,
    last: Option<(String, ClassId)>,
}

impl<'a> ClassResolver<'a> {
    fn new(classes: Classes<'a>) -> Self {
        let table = match &classes {
            Classes::Known(table, _) => &**table,
            Classes::Infer(table) => &**table,
        };
        let names = table
            .resolver()
            .into_iter()
            .map(|(name, id)| (name.to_string(), id))
            .collect();
        Self {
            classes,
            names,
            last: None,
        }
    }

    fn resolve(&mut self, name: &str) -> Result<ClassId, String> {
        if let Some((last, id)) = &self.last
            && last == name
        {
            return Ok(*id);
        }
        let id = match (self.names.get(name), &mut self.classes) {
            (Some(&id), _) => id,
            (None, Classes::Known(_, sidecar)) => {
                return Err(format!(
                    "unknown label '{name}' (neither a class nor a former class name in {})",
                    sidecar.display()
                ));
            }
            (None, Classes::Infer(table)) => {
                check_name(name)?;
                let id = table.add(name);
                self.names.insert(name.to_string(), id);
                id
            }
        };
        self.last = Some((name.to_string(), id));
        Ok(id)
    }
}

/// (source, time) text → one shared `Provenance` per distinct pair.
#[derive(Default)]
struct ProvenanceInterner {
    by_text: HashMap<(String, String), Arc<Provenance>>,
    last: Option<(String, String, Arc<Provenance>)>,
}

impl ProvenanceInterner {
    fn intern(&mut self, source: &str, time: &str) -> Result<Arc<Provenance>, String> {
        if let Some((s, t, p)) = &self.last
            && s == source
            && t == time
        {
            return Ok(p.clone());
        }
        let key = (source.to_string(), time.to_string());
        let provenance = match self.by_text.get(&key) {
            Some(p) => p.clone(),
            None => {
                let parsed_time = match time {
                    "" => None,
                    _ => Some(parse_time(time).ok_or_else(|| {
                        format!("bad time '{time}' (expected e.g. 2025-03-01T12:00:00.000Z)")
                    })?),
                };
                let p = Arc::new(Provenance {
                    source: Source::parse(source),
                    time: parsed_time,
                });
                self.by_text.insert(key.clone(), p.clone());
                p
            }
        };
        self.last = Some((key.0, key.1, provenance.clone()));
        Ok(provenance)
    }
}

/// Parses a label CSV. `path` is only for messages.
pub(crate) fn decode(path: &Path, bytes: &[u8], classes: Classes<'_>) -> DataResult<Members> {
    let err = |line: u64, reason: String| DataError::new(path, format!("line {line}: {reason}"));
    let bytes = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes); // Excel's BOM

    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(bytes);
    let header = reader
        .byte_headers()
        .map_err(|e| DataError::new(path, format!("cannot read the header: {e}")))?
        .clone();
    // column[k] = position of HEADER[k] in this file.
    let mut column: [Option<usize>; HEADER.len()] = [None; HEADER.len()];
    for (position, name) in header.iter().enumerate() {
        let name = String::from_utf8_lossy(name);
        let Some(k) = HEADER.iter().position(|h| *h == name) else {
            return Err(err(
                1,
                format!("unknown column '{name}' (expected {})", HEADER.join(",")),
            ));
        };
        if column[k].replace(position).is_some() {
            return Err(err(1, format!("column '{name}' appears twice")));
        }
    }
    if column[ID].is_none() {
        return Err(err(1, "no 'id' column".into()));
    }

    let mut classes = ClassResolver::new(classes);
    let mut manual_provenance = ProvenanceInterner::default();
    let mut pseudo_provenance = ProvenanceInterner::default();
    let mut rows: Vec<(String, MemberLabels, u64)> = Vec::new();
    let mut record = csv::ByteRecord::new();
    loop {
        match reader.read_byte_record(&mut record) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => {
                let line = e.position().map_or(0, |p| p.line());
                return Err(err(line, format!("malformed row: {e}")));
            }
        }
        let line = record.position().map_or(0, |p| p.line());
        let row = decode_row(
            &record,
            &column,
            &mut classes,
            &mut manual_provenance,
            &mut pseudo_provenance,
        )
        .map_err(|reason| err(line, reason))?;
        if let Some((id, labels)) = row {
            rows.push((id, labels, line));
        }
    }

    // Sorting is linear on the sorted files the store writes; duplicates end up adjacent.
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    if let Some(pair) = rows.windows(2).find(|pair| pair[0].0 == pair[1].0) {
        let (first, second) = (pair[0].2.min(pair[1].2), pair[0].2.max(pair[1].2));
        return Err(err(
            second,
            format!("duplicate id '{}' (first on line {first})", pair[0].0),
        ));
    }
    Ok(rows
        .into_iter()
        .map(|(id, labels, _)| (id, labels))
        .collect())
}

/// One row → `(id, labels)`, or `None` for a row without labels.
fn decode_row(
    record: &csv::ByteRecord,
    column: &[Option<usize>; HEADER.len()],
    classes: &mut ClassResolver<'_>,
    manual_provenance: &mut ProvenanceInterner,
    pseudo_provenance: &mut ProvenanceInterner,
) -> Result<Option<(String, MemberLabels)>, String> {
    let cell = |k: usize| -> Result<&str, String> {
        match column[k].and_then(|c| record.get(c)) {
            None => Ok(""),
            Some(raw) => std::str::from_utf8(raw)
                .map_err(|_| format!("column '{}' is not valid UTF-8", HEADER[k])),
        }
    };
    let id = cell(ID)?;
    if id.is_empty() {
        return Err("empty id".into());
    }
    let mut labels = MemberLabels::default();
    // A source or time without a label is ignored: pandas leaves them when a label is blanked
    // out, and they describe nothing.
    let manual_label = cell(MANUAL_LABEL)?;
    if !manual_label.is_empty() {
        labels.manual = Some(Manual {
            class: classes.resolve(manual_label)?,
            provenance: manual_provenance.intern(cell(MANUAL_SOURCE)?, cell(MANUAL_TIME)?)?,
        });
    }
    let pseudo_label = cell(PSEUDO_LABEL)?;
    if !pseudo_label.is_empty() {
        let text = cell(PSEUDO_CONFIDENCE)?;
        let confidence = text
            .trim()
            .parse::<f32>()
            .ok()
            .filter(|c| (0.0..=1.0).contains(c))
            .map(|c| c + 0.0) // -0 → 0
            .ok_or_else(|| format!("pseudo_confidence '{text}' is not a number in 0..1"))?;
        labels.pseudo = Some(Pseudo {
            class: classes.resolve(pseudo_label)?,
            confidence,
            provenance: pseudo_provenance.intern(cell(PSEUDO_SOURCE)?, cell(PSEUDO_TIME)?)?,
        });
    }
    Ok((!labels.is_empty()).then(|| (id.to_string(), labels)))
}

/// A cheap, stable content fingerprint (length + 64-bit hash) that tells which CSV version a
/// sidecar was written with. Hand-rolled so it never changes between Rust releases.
pub(crate) fn fingerprint(bytes: &[u8]) -> String {
    const K: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut hash: u64 = bytes.len() as u64 ^ 0x5851_f42d_4c95_7f2d;
    let mut chunks = bytes.chunks_exact(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        hash = (hash ^ u64::from_le_bytes(word)).wrapping_mul(K);
        hash ^= hash >> 32;
    }
    let mut tail = [0u8; 8];
    tail[..chunks.remainder().len()].copy_from_slice(chunks.remainder());
    hash = (hash ^ u64::from_le_bytes(tail)).wrapping_mul(K);
    hash ^= hash >> 29;
    format!("{}:{hash:016x}", bytes.len())
}
