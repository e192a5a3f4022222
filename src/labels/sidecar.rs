//! The class sidecar `<stem>.classes.json`: class names, colours and former names, plus which
//! CSV version they belong to.
//!
//! The two files cannot be replaced in one atomic step, so every save writes the sidecar first
//! and records both the fingerprint of the CSV about to be written and, when the classes
//! changed, the previous classes with the previous CSV's fingerprint. A crash between the two
//! renames leaves the old CSV next to the new sidecar; loading recognises the old CSV by its
//! fingerprint and uses the previous classes, giving exactly the last acknowledged state.

use super::classes::{Class, ClassTable};
use super::colour::Colour;
use crate::error::{DataError, DataResult};
use serde::{Deserialize, Serialize};
use std::path::Path;

const FORMAT: &str = "sense-label-classes";
const VERSION: u32 = 1;

#[derive(Serialize, Deserialize)]
struct SidecarJson {
    format: String,
    version: u32,
    classes: Vec<ClassJson>,
    /// Fingerprint of the CSV these classes were saved with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    csv_fingerprint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    previous: Option<PreviousJson>,
}

#[derive(Serialize, Deserialize)]
struct ClassJson {
    name: String,
    colour: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    aliases: Vec<String>,
}

#[derive(Serialize, Deserialize)]
struct PreviousJson {
    classes: Vec<ClassJson>,
    csv_fingerprint: String,
}

/// A decoded sidecar.
#[derive(Debug)]
pub(crate) struct Sidecar {
    pub classes: ClassTable,
    pub csv_fingerprint: Option<String>,
    /// Classes of the CSV version before the last save, if the classes changed in it.
    pub previous: Option<(ClassTable, String)>,
}

impl Sidecar {
    /// The classes to read a CSV with fingerprint `csv_fingerprint` against.
    pub(crate) fn classes_for(self, csv_fingerprint: &str) -> ClassTable {
        if self.csv_fingerprint.as_deref() == Some(csv_fingerprint) {
            return self.classes;
        }
        match self.previous {
            // The crash window between the sidecar and the CSV rename.
            Some((previous, fingerprint)) if fingerprint == csv_fingerprint => previous,
            // Edited by hand (or by an older tool): current names and former names resolve.
            _ => self.classes,
        }
    }
}

/// The sidecar path for a label CSV: `labels.csv` → `labels.classes.json`.
pub(crate) fn path_for(csv_path: &Path) -> std::path::PathBuf {
    let stem = csv_path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    csv_path.with_file_name(format!("{stem}.classes.json"))
}

fn to_json(classes: &ClassTable) -> Vec<ClassJson> {
    classes
        .iter()
        .map(|(_, c)| ClassJson {
            name: c.name.clone(),
            colour: c.colour.hex(),
            aliases: c.aliases.clone(),
        })
        .collect()
}

fn from_json(path: &Path, classes: Vec<ClassJson>) -> DataResult<ClassTable> {
    let classes = classes
        .into_iter()
        .map(|c| {
            let colour = Colour::from_hex(&c.colour).ok_or_else(|| {
                DataError::new(
                    path,
                    format!(
                        "class '{}': bad colour '{}' (expected #rrggbb)",
                        c.name, c.colour
                    ),
                )
            })?;
            Ok(Class {
                name: c.name,
                colour,
                aliases: c.aliases,
            })
        })
        .collect::<DataResult<Vec<_>>>()?;
    ClassTable::from_classes(classes).map_err(|reason| DataError::new(path, reason))
}

pub(crate) fn encode(
    classes: &ClassTable,
    csv_fingerprint: &str,
    previous: Option<(&ClassTable, &str)>,
) -> Vec<u8> {
    let json = SidecarJson {
        format: FORMAT.into(),
        version: VERSION,
        classes: to_json(classes),
        csv_fingerprint: Some(csv_fingerprint.into()),
        previous: previous.map(|(classes, fingerprint)| PreviousJson {
            classes: to_json(classes),
            csv_fingerprint: fingerprint.into(),
        }),
    };
    // Plain strings and numbers: serialisation cannot fail.
    let mut bytes = serde_json::to_vec_pretty(&json).unwrap_or_default();
    bytes.push(b'\n');
    bytes
}

pub(crate) fn decode(path: &Path, bytes: &[u8]) -> DataResult<Sidecar> {
    let json: SidecarJson = serde_json::from_slice(bytes)
        .map_err(|e| DataError::new(path, format!("not a valid class sidecar: {e}")))?;
    if json.format != FORMAT {
        return Err(DataError::new(
            path,
            format!("format is '{}', expected '{FORMAT}'", json.format),
        ));
    }
    if json.version > VERSION {
        return Err(DataError::new(
            path,
            format!(
                "written by a newer SENSE (format version {}, this one reads up to {VERSION})",
                json.version
            ),
        ));
    }
    let previous = match json.previous {
        Some(p) => Some((from_json(path, p.classes)?, p.csv_fingerprint)),
        None => None,
    };
    Ok(Sidecar {
        classes: from_json(path, json.classes)?,
        csv_fingerprint: json.csv_fingerprint,
        previous,
    })
}
