//! The one module that knows the YAML library (serde_yaml, unmaintained upstream: keep it
//! replaceable). Everything else sees [`Value`], [`KeyPath`] and [`Position`].
//!
//! Validation works on parsed values, section by section, so that one mistake does not hide the
//! next. Positions are looked up afterwards, only for the paths that have a problem: [`locate`]
//! re-reads the text and stops at the node the path names. That lets semantic checks (a tenant
//! name that does not match its file, an alias set twice) point at a line and column too.

use std::fmt;

use serde::{
    Deserialize,
    de::{self, DeserializeOwned, Visitor},
};

pub use serde_yaml::{Mapping, Value};

/// One step of a key path: a mapping key or a sequence index.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Seg {
    Key(String),
    Index(usize),
}

/// A path to a node of a document, shown as `triggers.account.custom_sip_table.dial_number`
/// or `access.tokens[1]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct KeyPath(pub Vec<Seg>);

impl KeyPath {
    pub fn root() -> Self {
        Self(Vec::new())
    }

    /// Parses a dotted path (`a.b[2].c`); keys containing dots cannot be written this way.
    pub fn parse(dotted: &str) -> Self {
        let mut segs = Vec::new();
        for part in dotted.split('.').filter(|p| !p.is_empty()) {
            let (key, rest) = part.split_once('[').map_or((part, ""), |(k, r)| (k, r));
            if !key.is_empty() {
                segs.push(Seg::Key(key.to_owned()));
            }
            for idx in rest.split('[') {
                if let Ok(i) = idx.trim_end_matches(']').parse() {
                    segs.push(Seg::Index(i));
                }
            }
        }
        Self(segs)
    }

    pub fn key(&self, key: &str) -> Self {
        let mut p = self.clone();
        p.0.push(Seg::Key(key.to_owned()));
        p
    }

    pub fn index(&self, idx: usize) -> Self {
        let mut p = self.clone();
        p.0.push(Seg::Index(idx));
        p
    }

    /// `self` followed by `other`.
    pub fn join(&self, other: &KeyPath) -> Self {
        let mut p = self.clone();
        p.0.extend(other.0.iter().cloned());
        p
    }

    pub fn parent(&self) -> Option<KeyPath> {
        let mut p = self.clone();
        p.0.pop().map(|_| p)
    }

    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                Seg::Key(k) if i == 0 => write!(f, "{k}")?,
                Seg::Key(k) => write!(f, ".{k}")?,
                Seg::Index(idx) => write!(f, "[{idx}]")?,
            }
        }
        Ok(())
    }
}

/// 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Position {
    pub line: usize,
    pub column: usize,
}

/// Parses a whole document. A syntax error carries its position.
pub fn parse(text: &str) -> Result<Value, (String, Option<Position>)> {
    serde_yaml::from_str::<Value>(text).map_err(|err| {
        let pos = err.location().map(|l| Position { line: l.line(), column: l.column() });
        (strip_location(&err.to_string()), pos)
    })
}

/// Deserializes a parsed node into `T`, with the path (relative to the node) of the first problem.
pub fn deserialize<T: DeserializeOwned>(value: &Value) -> Result<T, (KeyPath, String)> {
    serde_path_to_error::deserialize::<_, T>(value).map_err(|err| {
        let path = KeyPath(
            err.path()
                .iter()
                .filter_map(|seg| match seg {
                    serde_path_to_error::Segment::Seq { index } => Some(Seg::Index(*index)),
                    serde_path_to_error::Segment::Map { key } => Some(Seg::Key(key.clone())),
                    serde_path_to_error::Segment::Enum { variant } => Some(Seg::Key(variant.clone())),
                    serde_path_to_error::Segment::Unknown => None,
                })
                .collect(),
        );
        (path, strip_location(&err.into_inner().to_string()))
    })
}

/// serde_yaml puts " at line L column C" into messages; diagnostics carry positions separately.
fn strip_location(msg: &str) -> String {
    let mut msg = msg.to_owned();
    while let Some(stripped) = strip_one_location(&msg) {
        msg = stripped;
    }
    msg
}

fn strip_one_location(msg: &str) -> Option<String> {
    let start = msg.find(" at line ")?;
    let rest = &msg[start + " at line ".len()..];
    // Skip "L column C" and keep whatever follows (", while parsing a flow sequence").
    let mut words = rest.splitn(3, ' ');
    let (Some(_line), Some("column"), Some(tail)) = (words.next(), words.next(), words.next()) else {
        return None;
    };
    let tail = tail.trim_start_matches(|c: char| c.is_ascii_digit());
    Some(format!("{}{tail}", &msg[..start]))
}

/// What [`Locator::locate`] points at: the node's value, or the key that introduces it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Value,
    Key,
}

/// Positions of a document's nodes, from a second, event-level parse (yaml-rust2 reports a
/// marker per event), run once and only for files that have problems.
pub struct Locator {
    tree: Option<PosNode>,
}

impl Locator {
    pub fn new(text: &str) -> Self {
        Self { tree: PosNode::parse(text) }
    }

    /// The position of the node at `path`, or of its nearest ancestor that exists.
    pub fn locate(&self, path: &KeyPath, target: Target) -> Option<Position> {
        locate_in(self.tree.as_ref()?, path, target)
    }
}

fn locate_in(tree: &PosNode, path: &KeyPath, target: Target) -> Option<Position> {
    let mut node = tree;
    let mut key_pos = None;
    for seg in &path.0 {
        let next = match (seg, &node.kind) {
            (Seg::Key(k), PosKind::Map(entries)) => {
                entries.iter().find(|(key, _, _)| key == k).map(|(_, kp, n)| (Some(*kp), n))
            }
            (Seg::Index(i), PosKind::Seq(items)) => items.get(*i).map(|n| (None, n)),
            _ => None,
        };
        match next {
            Some((kp, n)) => {
                key_pos = kp;
                node = n;
            }
            // The node is missing (e.g. a required key): point at its nearest ancestor.
            None => return Some(node.pos),
        }
    }
    match target {
        Target::Key => Some(key_pos.unwrap_or(node.pos)),
        Target::Value => Some(node.pos),
    }
}

/// Flow collections (`[`, `{`) nested deeper than this are refused before parsing: real tenant
/// files nest two or three, and the parsers' cost grows with the square of an unclosed depth.
pub const MAX_FLOW_DEPTH: usize = 32;
/// Nodes (scalars, mappings, sequences) a tenant file may hold; a real one has about a hundred.
/// Checked after parsing, before the per-problem passes that would multiply with it.
pub const MAX_NODES: usize = 10_000;

/// Where flow collections first nest deeper than `max`, by a scan that skips comments and quoted
/// scalars (an approximation of YAML's grammar that never undercounts real nesting by much and
/// costs one pass).
pub fn too_deep(text: &str, max: usize) -> Option<Position> {
    // Over bytes: every character that matters here is ASCII, and a byte loop is several times
    // faster than decoding chars (this runs on every file of every load). Columns count
    // characters: UTF-8 continuation bytes do not advance them.
    let bytes = text.as_bytes();
    let (mut depth, mut line, mut column) = (0usize, 1usize, 0usize);
    let mut quote: Option<u8> = None;
    let mut comment = false;
    let mut prev = b'\n';
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        i += 1;
        if c & 0xC0 != 0x80 {
            column += 1;
        }
        if c == b'\n' {
            // A quoted scalar may span lines: `quote` stays as it is.
            (line, column, comment) = (line + 1, 0, false);
            prev = c;
            continue;
        }
        if comment {
            continue;
        }
        match quote {
            Some(b'"') if c == b'\\' => {
                // The escaped character (an ASCII one when it matters: `\"`, `\\`).
                if bytes.get(i).is_some_and(|b| b & 0xC0 != 0x80) {
                    column += 1;
                }
                i += 1;
            }
            Some(q) if c == q => {
                // `''` inside a single-quoted scalar is an escaped quote.
                if q == b'\'' && bytes.get(i) == Some(&b'\'') {
                    i += 1;
                    column += 1;
                } else {
                    quote = None;
                }
            }
            Some(_) => {}
            None => match c {
                b'#' if prev.is_ascii_whitespace() => comment = true,
                b'\'' | b'"'
                    if prev.is_ascii_whitespace() || matches!(prev, b'[' | b'{' | b',' | b':' | b'-' | b'?') =>
                {
                    quote = Some(c)
                }
                b'[' | b'{' => {
                    depth += 1;
                    if depth > max {
                        return Some(Position { line, column });
                    }
                }
                b']' | b'}' => depth = depth.saturating_sub(1),
                _ => {}
            },
        }
        prev = c;
    }
    None
}

/// The nodes of `value`, counting no further than `limit + 1`.
pub fn node_count(value: &Value, limit: usize) -> usize {
    let mut count = 0;
    let mut stack = vec![value];
    while let Some(v) = stack.pop() {
        count += 1;
        if count > limit {
            break;
        }
        match v {
            Value::Mapping(m) => m.iter().for_each(|(k, v)| {
                stack.push(k);
                stack.push(v);
            }),
            Value::Sequence(items) => stack.extend(items.iter()),
            Value::Tagged(t) => stack.push(&t.value),
            _ => {}
        }
    }
    count
}

/// A document reduced to node positions.
struct PosNode {
    pos: Position,
    kind: PosKind,
}

enum PosKind {
    Scalar,
    /// Entries as (key text, key position, value).
    Map(Vec<(String, Position, PosNode)>),
    Seq(Vec<PosNode>),
}

impl PosNode {
    fn parse(text: &str) -> Option<PosNode> {
        use yaml_rust2::parser::{Event, Parser};
        let mut parser = Parser::new_from_str(text);
        // Up to the first document's root node.
        loop {
            let (event, mark) = parser.next_token().ok()?;
            match event {
                Event::StreamStart | Event::DocumentStart | Event::Nothing => continue,
                Event::StreamEnd | Event::DocumentEnd => return None,
                event => return Self::node(&mut parser, event, position(mark)),
            }
        }
    }

    fn node(
        parser: &mut yaml_rust2::parser::Parser<std::str::Chars<'_>>,
        first: yaml_rust2::parser::Event,
        pos: Position,
    ) -> Option<PosNode> {
        use yaml_rust2::parser::Event;
        match first {
            Event::MappingStart(..) => {
                let mut entries = Vec::new();
                loop {
                    let (event, mark) = parser.next_token().ok()?;
                    if event == Event::MappingEnd {
                        // A block mapping's start marker sits after its first key: its first key
                        // is where a reader looks for it.
                        let pos = entries.first().map_or(pos, |(_, key_pos, _)| *key_pos);
                        return Some(PosNode { pos, kind: PosKind::Map(entries) });
                    }
                    let key_pos = position(mark);
                    let key = match &event {
                        Event::Scalar(k, ..) => k.clone(),
                        _ => String::new(),
                    };
                    Self::node(parser, event, key_pos)?;
                    let (value, vmark) = parser.next_token().ok()?;
                    let value = Self::node(parser, value, position(vmark))?;
                    entries.push((key, key_pos, value));
                }
            }
            Event::SequenceStart(..) => {
                let mut items = Vec::new();
                loop {
                    let (event, mark) = parser.next_token().ok()?;
                    if event == Event::SequenceEnd {
                        return Some(PosNode { pos, kind: PosKind::Seq(items) });
                    }
                    items.push(Self::node(parser, event, position(mark))?);
                }
            }
            _ => Some(PosNode { pos, kind: PosKind::Scalar }),
        }
    }
}

/// yaml-rust2 markers: 1-based lines, 0-based columns.
fn position(mark: yaml_rust2::scanner::Marker) -> Position {
    Position { line: mark.line(), column: mark.col() + 1 }
}

/// A value read from YAML as text: accepts strings and other scalars (so that `password: 1234`
/// is a string, and an error message never has to quote a secret's value back).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScalarString(pub String);

impl<'de> Deserialize<'de> for ScalarString {
    fn deserialize<D: de::Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = ScalarString;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ScalarString, E> {
                Ok(ScalarString(v.to_owned()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<ScalarString, E> {
                Ok(ScalarString(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<ScalarString, E> {
                Ok(ScalarString(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<ScalarString, E> {
                Ok(ScalarString(v.to_string()))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<ScalarString, E> {
                Ok(ScalarString(v.to_string()))
            }
        }
        de.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "\
tenant: acme
access:
  tokens:
    - sha256:aa
    - sha256:bb
triggers:
  account:
    provider: alianza
    custom_sip_table:
      dial_number: x
";

    fn at(line: usize, column: usize) -> Option<Position> {
        Some(Position { line, column })
    }

    #[test]
    fn flow_nesting_is_found_where_it_passes_the_limit_outside_quotes_and_comments() {
        assert_eq!(too_deep("a: [[[x]]]", 2), at(1, 6));
        assert_eq!(too_deep("\u{e9}: [[[x]]]", 2), at(1, 6), "a character is one column, whatever its bytes");
        assert_eq!(too_deep("a: '[[[' # [[[\nb: \"[[[\\\"[[[\"\nc: 'it''s [[['", 2), None);
        assert_eq!(too_deep("a: [\n [\n  [", 2), at(3, 3));
        assert_eq!(too_deep("a: [[x], [y], [z]]", 2), None, "siblings do not add up");
    }

    #[test]
    fn paths_print_and_parse_dotted() {
        let p = KeyPath::parse("access.tokens[1]");
        assert_eq!(p, KeyPath::root().key("access").key("tokens").index(1));
        assert_eq!(p.to_string(), "access.tokens[1]");
    }

    #[test]
    fn locate_finds_values_keys_and_sequence_items() {
        let p = KeyPath::parse("triggers.account.custom_sip_table.dial_number");
        assert_eq!(Locator::new(DOC).locate(&p, Target::Value), at(10, 20));
        assert_eq!(Locator::new(DOC).locate(&p, Target::Key), at(10, 7));
        assert_eq!(Locator::new(DOC).locate(&KeyPath::parse("access.tokens[1]"), Target::Value), at(5, 7));
        assert_eq!(Locator::new(DOC).locate(&KeyPath::parse("tenant"), Target::Key), at(1, 1));
    }

    #[test]
    fn locate_falls_back_to_the_nearest_existing_ancestor() {
        let missing = KeyPath::parse("triggers.account.username");
        assert_eq!(Locator::new(DOC).locate(&missing, Target::Value), at(8, 5));
    }

    #[test]
    fn syntax_errors_carry_a_position_without_repeating_it_in_the_message() {
        let (msg, pos) = parse("tenant: acme\naccess: [unclosed\n").unwrap_err();
        assert!(pos.is_some());
        assert!(!msg.contains(" at line "), "{msg}");
    }

    #[test]
    fn deserialize_reports_the_path_of_the_bad_node() {
        #[derive(Debug, Deserialize)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct T {
            custom_sip_table: Table,
        }
        #[derive(Debug, Deserialize)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct Table {
            dial_number: u32,
        }
        let v = parse("custom_sip_table:\n  dial_number: x\n").unwrap();
        let (path, msg) = deserialize::<T>(&v).unwrap_err();
        assert_eq!(path.to_string(), "custom_sip_table.dial_number");
        assert!(msg.contains("expected u32"), "{msg}");
    }

    #[test]
    fn scalar_strings_accept_numbers_and_bools() {
        let v: ScalarString = serde_yaml::from_str("1234").unwrap();
        assert_eq!(v.0, "1234");
    }
}
