//! The class table: names, stable colours and former names (aliases).
//!
//! A class keeps its colour for life, whatever it is renamed to. Renaming or merging a class
//! records the old name as an alias, so a CSV written before the change (a backup, a copy
//! a colleague edited in pandas) still resolves to the right class.

use super::colour::{Colour, palette, palette_colour};
use std::collections::HashMap;

/// Index of a class slot in a [`ClassTable`]; stable for the session (merged-away classes
/// leave an empty slot so the ids of the others do not move).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct ClassId(pub(crate) u32);

impl ClassId {
    pub(crate) fn index(self) -> usize {
        self.0 as usize
    }
}

/// One class as the user sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Class {
    pub name: String,
    pub colour: Colour,
    /// Former names (from renames and merges), oldest first. CSV labels with these names
    /// resolve to this class.
    pub aliases: Vec<String>,
}

/// Classes in creation order.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct ClassTable {
    slots: Vec<Option<Class>>,
}

/// Longest class name, in bytes. Names are shown in tables and legends; far longer ones are
/// a mistake (a whole file pasted into a cell), and column widths of 64 KiB or more panic in
/// `format!`.
pub const MAX_CLASS_NAME_BYTES: usize = 256;

/// Why a class name is not acceptable.
pub(crate) fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("class name is empty".into());
    }
    if name.len() > MAX_CLASS_NAME_BYTES {
        let start: String = name.chars().take(20).collect();
        return Err(format!(
            "class name '{start}…' is {} bytes long (at most {MAX_CLASS_NAME_BYTES})",
            name.len()
        ));
    }
    if name.trim() != name {
        return Err(format!(
            "class name '{name}' starts or ends with whitespace"
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(format!("class name {name:?} contains control characters"));
    }
    Ok(())
}

impl ClassTable {
    /// Builds a table from classes read from disk, checking that every name and alias is
    /// valid and means exactly one class.
    pub(crate) fn from_classes(classes: Vec<Class>) -> Result<Self, String> {
        let mut seen: HashMap<&str, &str> = HashMap::new();
        for class in &classes {
            check_name(&class.name)?;
            for name in std::iter::once(&class.name).chain(&class.aliases) {
                check_name(name)?;
                if let Some(other) = seen.insert(name, &class.name) {
                    return Err(format!(
                        "name '{name}' is used by both class '{other}' and class '{}'",
                        class.name
                    ));
                }
            }
        }
        Ok(Self {
            slots: classes.into_iter().map(Some).collect(),
        })
    }

    /// Live classes in order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (ClassId, &Class)> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, slot)| Some((ClassId(i as u32), slot.as_ref()?)))
    }

    pub(crate) fn len(&self) -> usize {
        self.slots.iter().flatten().count()
    }

    /// Number of slots, live or not: an upper bound for `ClassId::index`.
    pub(crate) fn slot_count(&self) -> usize {
        self.slots.len()
    }

    pub(crate) fn get(&self, id: ClassId) -> Option<&Class> {
        self.slots.get(id.index())?.as_ref()
    }

    /// The class named `name` (current names only).
    pub(crate) fn find(&self, name: &str) -> Option<ClassId> {
        self.iter().find(|(_, c)| c.name == name).map(|(id, _)| id)
    }

    /// The class `name` means: a current name, else a former name.
    pub(crate) fn resolve(&self, name: &str) -> Option<ClassId> {
        self.find(name).or_else(|| {
            self.iter()
                .find(|(_, c)| c.aliases.iter().any(|a| a == name))
                .map(|(id, _)| id)
        })
    }

    /// Name-or-alias → class, for resolving many labels at once.
    pub(crate) fn resolver(&self) -> HashMap<&str, ClassId> {
        let mut map = HashMap::new();
        for (id, class) in self.iter() {
            for alias in &class.aliases {
                map.insert(alias.as_str(), id);
            }
        }
        // Current names win over aliases (they never clash in a valid table anyway).
        for (id, class) in self.iter() {
            map.insert(class.name.as_str(), id);
        }
        map
    }

    /// The first palette colour no live class uses, so neighbours stay distinguishable.
    fn unused_colour(&self) -> Colour {
        let used: Vec<Colour> = self.iter().map(|(_, c)| c.colour).collect();
        palette()
            .iter()
            .copied()
            .find(|c| !used.contains(c))
            .unwrap_or_else(|| palette_colour(self.slots.len()))
    }

    /// Appends a class (the caller has checked the name is valid and not a current name).
    /// A former name of another class that equals `name` stops being an alias: current
    /// names always win.
    pub(crate) fn add(&mut self, name: &str) -> ClassId {
        self.forget_alias(name);
        let colour = self.unused_colour();
        self.slots.push(Some(Class {
            name: name.to_string(),
            colour,
            aliases: Vec::new(),
        }));
        ClassId((self.slots.len() - 1) as u32)
    }

    /// Renames `id` to `new_name` (valid, not another class's current name), keeping the old
    /// name as an alias.
    pub(crate) fn rename(&mut self, id: ClassId, new_name: &str) {
        self.forget_alias(new_name);
        if let Some(Some(class)) = self.slots.get_mut(id.index()) {
            let old = std::mem::replace(&mut class.name, new_name.to_string());
            if old != new_name && !class.aliases.contains(&old) {
                class.aliases.push(old);
            }
        }
    }

    /// Removes the classes `from` and records their names and aliases as aliases of `into`.
    pub(crate) fn merge(&mut self, from: &[ClassId], into: ClassId) {
        let mut inherited = Vec::new();
        for &id in from {
            if id == into {
                continue;
            }
            if let Some(class) = self.slots.get_mut(id.index()).and_then(Option::take) {
                inherited.push(class.name);
                inherited.extend(class.aliases);
            }
        }
        if let Some(Some(target)) = self.slots.get_mut(into.index()) {
            for name in inherited {
                if !target.aliases.contains(&name) {
                    target.aliases.push(name);
                }
            }
        }
    }

    pub(crate) fn set_colour(&mut self, id: ClassId, colour: Colour) {
        if let Some(Some(class)) = self.slots.get_mut(id.index()) {
            class.colour = colour;
        }
    }

    fn forget_alias(&mut self, name: &str) {
        for class in self.slots.iter_mut().flatten() {
            class.aliases.retain(|a| a != name);
        }
    }

    #[cfg(test)]
    fn to_classes(&self) -> Vec<Class> {
        self.iter().map(|(_, c)| c.clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlong_names_are_refused() {
        assert!(check_name(&"x".repeat(MAX_CLASS_NAME_BYTES)).is_ok());
        let err = check_name(&"x".repeat(70_000)).unwrap_err();
        assert!(err.contains("70000 bytes"), "{err}");
    }

    #[test]
    fn rename_and_merge_keep_former_names_resolvable() {
        let mut table = ClassTable::default();
        let a = table.add("a");
        let b = table.add("b");
        let c = table.add("c");
        assert_ne!(table.get(a).unwrap().colour, table.get(b).unwrap().colour);
        let colour_a = table.get(a).unwrap().colour;

        table.rename(a, "alpha");
        assert_eq!(table.get(a).unwrap().colour, colour_a);
        assert_eq!(table.resolve("a"), Some(a));
        assert_eq!(table.find("a"), None);

        table.merge(&[b, c], a);
        assert_eq!(table.len(), 1);
        assert_eq!(table.get(a).unwrap().aliases, ["a", "b", "c"]);
        assert_eq!(table.resolve("c"), Some(a));

        // A new class named like an alias takes the name over.
        let new_b = table.add("b");
        assert_eq!(table.resolve("b"), Some(new_b));
        assert_eq!(table.get(a).unwrap().aliases, ["a", "c"]);
        assert!(ClassTable::from_classes(table.to_classes()).is_ok());
    }

    #[test]
    fn from_classes_rejects_ambiguous_names() {
        let class = |name: &str, aliases: &[&str]| Class {
            name: name.into(),
            colour: Colour([0, 0, 0]),
            aliases: aliases.iter().map(|s| s.to_string()).collect(),
        };
        assert!(ClassTable::from_classes(vec![class("a", &[]), class("a", &[])]).is_err());
        assert!(ClassTable::from_classes(vec![class("a", &[]), class("b", &["a"])]).is_err());
        assert!(ClassTable::from_classes(vec![class("a", &["x"]), class("b", &["x"])]).is_err());
        assert!(ClassTable::from_classes(vec![class("", &[])]).is_err());
        assert!(ClassTable::from_classes(vec![class(" a", &[])]).is_err());
        assert!(ClassTable::from_classes(vec![class("a", &["x"]), class("b", &[])]).is_ok());
    }
}
