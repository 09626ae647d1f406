//! Where each key of a cluster file sits: a second, untyped pass over the
//! text that keeps the parser's spans as line numbers, so checks made
//! after parsing (duplicates, addresses, data types) still name the line.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use toml::Spanned;

/// A value's line and, for tables and arrays, where its parts are.
#[derive(Debug, Clone, Default)]
pub struct Pos {
    /// 1-based; 0 where the parser gave no span.
    line: usize,
    fields: BTreeMap<String, Pos>,
    items: Vec<Pos>,
}

impl Pos {
    /// The whole document's positions; empty when the text does not parse
    /// (the typed pass reports that).
    pub fn parse(text: &str) -> Self {
        let starts: Vec<usize> = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        match toml::from_str::<Tree>(text) {
            Ok(tree) => tree.into_pos(0, &starts),
            Err(_) => Self::default(),
        }
    }

    /// The `i`th table of the array of tables `kind` (`[[kind]]`).
    pub fn item(&self, kind: &str, i: usize) -> Self {
        self.fields
            .get(kind)
            .and_then(|k| k.items.get(i))
            .cloned()
            .unwrap_or_default()
    }

    /// The line of the value at `path` (keys, or indices into arrays), or
    /// of the deepest part of the path that is known.
    pub fn line_of(&self, path: &[&str]) -> Option<usize> {
        let mut at = self;
        let mut line = (self.line > 0).then_some(self.line);
        for step in path {
            let next = match step.parse::<usize>() {
                Ok(i) if !at.items.is_empty() => at.items.get(i),
                _ => at.fields.get(*step),
            };
            let Some(next) = next else { break };
            at = next;
            if at.line > 0 {
                line = Some(at.line);
            }
        }
        line
    }
}

/// What the parser gives: byte offsets, turned into lines afterwards.
#[derive(Default)]
struct Tree {
    fields: BTreeMap<String, Spanned<Tree>>,
    items: Vec<Spanned<Tree>>,
}

impl Tree {
    fn into_pos(self, start: usize, starts: &[usize]) -> Pos {
        let child = |s: Spanned<Tree>| {
            let start = s.span().start;
            s.into_inner().into_pos(start, starts)
        };
        Pos {
            line: starts.partition_point(|s| *s <= start),
            fields: self
                .fields
                .into_iter()
                .map(|(k, v)| (k, child(v)))
                .collect(),
            items: self.items.into_iter().map(child).collect(),
        }
    }
}

impl<'de> Deserialize<'de> for Tree {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(TreeVisitor)
    }
}

struct TreeVisitor;

impl<'de> Visitor<'de> for TreeVisitor {
    type Value = Tree;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any TOML value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Tree, A::Error> {
        let mut tree = Tree::default();
        while let Some((key, value)) = map.next_entry::<String, Spanned<Tree>>()? {
            tree.fields.insert(key, value);
        }
        Ok(tree)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Tree, A::Error> {
        let mut tree = Tree::default();
        while let Some(item) = seq.next_element::<Spanned<Tree>>()? {
            tree.items.push(item);
        }
        Ok(tree)
    }

    fn visit_bool<E>(self, _: bool) -> Result<Tree, E> {
        Ok(Tree::default())
    }

    fn visit_i64<E>(self, _: i64) -> Result<Tree, E> {
        Ok(Tree::default())
    }

    fn visit_u64<E>(self, _: u64) -> Result<Tree, E> {
        Ok(Tree::default())
    }

    fn visit_f64<E>(self, _: f64) -> Result<Tree, E> {
        Ok(Tree::default())
    }

    fn visit_str<E>(self, _: &str) -> Result<Tree, E> {
        Ok(Tree::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_of_tables_inline_tables_and_arrays() {
        let text = "[[node]]\nname = \"a\"\n\n[[node]]\nname = \"b\"\ninterfaces = [\n  { mac = \"m1\" },\n  { mac = \"m2\", ip = \"x\" },\n]\ndata = { test = { delay_ms = 5 } }\n";
        let pos = Pos::parse(text);
        assert_eq!(pos.item("node", 0).line_of(&["name"]), Some(2));
        let b = pos.item("node", 1);
        assert_eq!(b.line_of(&["name"]), Some(5));
        assert_eq!(b.line_of(&["interfaces", "1", "ip"]), Some(8));
        assert_eq!(b.line_of(&["interfaces", "0", "ip"]), Some(7));
        assert_eq!(b.line_of(&["data", "test", "delay_ms"]), Some(10));
    }
}
