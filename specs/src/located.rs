//! A YAML tree that remembers where every node came from.
//!
//! serde's YAML deserializers report the position of the *first* error only, and only as
//! far as the deserializer got. To name file, line, column and field path for *every*
//! problem in a document we parse YAML once into this tree (yaml-rust2's event parser gives
//! each event a [`Marker`]), convert it to a `serde_json::Value` for schema validation and
//! typed deserialization, and look paths up in the tree when an error needs a position.
//!
//! Scalars are resolved with the YAML 1.2 core schema (`yes`/`no` stay strings); quoted
//! scalars are always strings. Duplicate keys and non-scalar keys are errors, as YAML
//! itself demands.

use std::collections::HashMap;
use std::fmt;

use serde_json::{Map, Number, Value};
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser, Tag};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// A 1-based line and column in a source file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Position {
    /// Line, starting at 1.
    pub line: usize,
    /// Column, starting at 1.
    pub column: usize,
}

impl From<Marker> for Position {
    fn from(m: Marker) -> Self {
        // yaml-rust2 counts lines from 1 and columns from 0.
        Position {
            line: m.line(),
            column: m.col() + 1,
        }
    }
}

/// One step of a field path: a mapping key or a sequence index.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PathSegment {
    /// A mapping key.
    Key(String),
    /// A sequence index.
    Index(usize),
}

/// A field path such as `spec.agents[2].provider`, the way users read it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct FieldPath(pub Vec<PathSegment>);

impl FieldPath {
    /// The path of the document root.
    pub fn root() -> Self {
        FieldPath(Vec::new())
    }

    /// Parses a dotted path (`spec.locks.leaseTtl`) with `[n]` indexes.
    pub fn parse(dotted: &str) -> Self {
        let mut segments = Vec::new();
        for part in dotted.split('.').filter(|p| !p.is_empty()) {
            let (key, rest) = part.split_once('[').unwrap_or((part, ""));
            if !key.is_empty() {
                segments.push(PathSegment::Key(key.to_string()));
            }
            for idx in rest.split('[') {
                if let Ok(i) = idx.trim_end_matches(']').parse() {
                    segments.push(PathSegment::Index(i));
                }
            }
        }
        FieldPath(segments)
    }

    /// This path extended by a key.
    pub fn key(&self, key: &str) -> Self {
        let mut p = self.clone();
        p.0.push(PathSegment::Key(key.to_string()));
        p
    }

    /// This path extended by an index.
    pub fn index(&self, i: usize) -> Self {
        let mut p = self.clone();
        p.0.push(PathSegment::Index(i));
        p
    }

    /// Whether this is the document root.
    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                PathSegment::Index(n) => write!(f, "[{n}]")?,
                PathSegment::Key(k) if is_plain_key(k) => {
                    if i > 0 {
                        f.write_str(".")?;
                    }
                    f.write_str(k)?;
                }
                PathSegment::Key(k) => write!(f, "[{k:?}]")?,
            }
        }
        Ok(())
    }
}

fn is_plain_key(k: &str) -> bool {
    !k.is_empty()
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// A YAML node with the position it started at.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// Where the node starts.
    pub pos: Position,
    /// The node's content.
    pub kind: NodeKind,
}

/// The content of a [`Node`].
#[derive(Debug, Clone, PartialEq)]
pub enum NodeKind {
    /// A scalar, already resolved to a JSON value (null, bool, number or string).
    Scalar(Value),
    /// A sequence.
    Seq(Vec<Node>),
    /// A mapping, in source order: key, key position, value.
    Map(Vec<(String, Position, Node)>),
}

/// A problem found while building the tree: a YAML syntax error or a structural one.
#[derive(Debug, Clone, PartialEq)]
pub struct TreeError {
    /// Where it happened.
    pub pos: Position,
    /// The field path, as far as it is known.
    pub path: FieldPath,
    /// What went wrong.
    pub message: String,
}

/// One YAML document of a stream: its root node, or `None` for an empty document.
#[derive(Debug, Clone, PartialEq)]
pub struct LocatedDocument {
    /// Where the document starts.
    pub pos: Position,
    /// The root node; `None` when the document is empty.
    pub root: Option<Node>,
    /// Structural problems (duplicate keys, unsupported keys or numbers).
    pub errors: Vec<TreeError>,
}

impl Node {
    /// Converts the tree into JSON for schema validation and typed deserialization.
    pub fn to_json(&self) -> Value {
        match &self.kind {
            NodeKind::Scalar(v) => v.clone(),
            NodeKind::Seq(items) => Value::Array(items.iter().map(Node::to_json).collect()),
            NodeKind::Map(entries) => {
                let mut map = Map::new();
                for (k, _, v) in entries {
                    map.insert(k.clone(), v.to_json());
                }
                Value::Object(map)
            }
        }
    }

    /// The position of the node at `path`, or of the deepest ancestor that exists. With
    /// `at_key`, a mapping entry is located at its key instead of its value.
    pub fn locate(&self, path: &FieldPath, at_key: bool) -> Position {
        let mut node = self;
        let last = path.0.len().saturating_sub(1);
        for (i, seg) in path.0.iter().enumerate() {
            let next = match (seg, &node.kind) {
                (PathSegment::Key(k), NodeKind::Map(entries)) => {
                    match entries.iter().find(|(key, _, _)| key == k) {
                        Some((_, key_pos, _)) if at_key && i == last => return *key_pos,
                        Some((_, _, v)) => v,
                        None => return node.pos,
                    }
                }
                (PathSegment::Index(n), NodeKind::Seq(items)) => match items.get(*n) {
                    Some(v) => v,
                    None => return node.pos,
                },
                _ => return node.pos,
            };
            node = next;
        }
        node.pos
    }
}

/// The largest manifest text (a file, or stdin) parsed: manifests are small, and a huge
/// one is refused with an error instead of filling memory.
pub const MAX_STREAM_BYTES: usize = 8 << 20;

/// The most nodes one document may expand to, aliases counted as the copies they make: a
/// manifest has thousands at most; a "billion laughs" of nested aliases would have
/// billions, and is refused without being built.
pub const MAX_DOCUMENT_NODES: usize = 100_000;

/// Parses a YAML stream into located documents.
///
/// # Errors
/// A YAML syntax error ends the stream: it is returned with its position, and the
/// documents before it are lost to the caller (a file with a syntax error is not applied).
pub fn parse_stream(text: &str) -> Result<Vec<LocatedDocument>, TreeError> {
    if text.len() > MAX_STREAM_BYTES {
        return Err(TreeError {
            pos: Position { line: 1, column: 1 },
            path: FieldPath::root(),
            message: format!(
                "the manifest text is over {MAX_STREAM_BYTES} bytes; manifests are limited to 8 MiB"
            ),
        });
    }
    let mut builder = TreeBuilder::default();
    let mut parser = Parser::new_from_str(text);
    parser.load(&mut builder, true).map_err(|e| TreeError {
        pos: Position::from(*e.marker()),
        path: FieldPath::root(),
        message: format!("invalid YAML: {}", e.info()),
    })?;
    Ok(builder.docs)
}

/// Builds [`Node`]s from parser events with an explicit stack of open collections.
#[derive(Default)]
struct TreeBuilder {
    docs: Vec<LocatedDocument>,
    stack: Vec<Open>,
    /// Anchored nodes, with how many nodes each expands to.
    anchors: HashMap<usize, (Node, usize)>,
    doc_pos: Position,
    doc_root: Option<Node>,
    errors: Vec<TreeError>,
    /// Nodes the current document has expanded to so far.
    nodes: usize,
    /// Set once the document went over [`MAX_DOCUMENT_NODES`]: the rest is not built.
    refused: bool,
}

/// A collection being built: its node, its anchor, and (for mappings) a pending key.
struct Open {
    node: Node,
    anchor: usize,
    pending_key: Option<(Node, Position)>,
    /// Nodes it holds, itself included.
    size: usize,
}

impl TreeBuilder {
    fn current_path(&self) -> FieldPath {
        let mut path = FieldPath::root();
        for open in &self.stack {
            match &open.node.kind {
                NodeKind::Seq(items) => path = path.index(items.len()),
                NodeKind::Map(_) => {
                    if let Some((k, _)) = &open.pending_key {
                        path = path.key(&scalar_key(k).unwrap_or_default());
                    }
                }
                NodeKind::Scalar(_) => {}
            }
        }
        path
    }

    /// Counts `size` more nodes; refuses the document once it is over the limit.
    fn count(&mut self, size: usize, pos: Position) -> bool {
        self.nodes = self.nodes.saturating_add(size);
        if self.nodes > MAX_DOCUMENT_NODES && !self.refused {
            self.refused = true;
            self.stack.clear();
            self.anchors.clear();
            let path = FieldPath::root();
            self.errors.push(TreeError {
                pos,
                path,
                message: format!(
                    "the document expands to more than {MAX_DOCUMENT_NODES} nodes (aliases counted as the copies they make); refused as a YAML bomb"
                ),
            });
        }
        !self.refused
    }

    fn push_value(&mut self, node: Node, anchor: usize, size: usize) {
        if anchor > 0 {
            self.anchors.insert(anchor, (node.clone(), size));
        }
        if let Some(top) = self.stack.last_mut() {
            top.size = top.size.saturating_add(size);
        }
        let path = self.current_path();
        let Some(top) = self.stack.last_mut() else {
            self.doc_root = Some(node);
            return;
        };
        match &mut top.node.kind {
            NodeKind::Seq(items) => items.push(node),
            NodeKind::Map(entries) => match top.pending_key.take() {
                None => top.pending_key = Some((node.clone(), node.pos)),
                Some((key, key_pos)) => match scalar_key(&key) {
                    Some(k) if entries.iter().any(|(e, _, _)| *e == k) => {
                        self.errors.push(TreeError {
                            pos: key_pos,
                            path,
                            message: format!("duplicate key {k:?}"),
                        })
                    }
                    Some(k) => entries.push((k, key_pos, node)),
                    None => self.errors.push(TreeError {
                        pos: key_pos,
                        path,
                        message: "mapping keys must be scalars".to_string(),
                    }),
                },
            },
            NodeKind::Scalar(_) => {}
        }
    }

    fn scalar(
        &mut self,
        text: String,
        style: TScalarStyle,
        tag: Option<Tag>,
        anchor: usize,
        pos: Position,
    ) {
        let is_str_tag = tag.as_ref().is_some_and(|t| t.suffix == "str");
        let value = if style != TScalarStyle::Plain || is_str_tag {
            Value::String(text)
        } else {
            match resolve_plain(&text) {
                Ok(v) => v,
                Err(message) => {
                    let path = self.current_path();
                    self.errors.push(TreeError { pos, path, message });
                    Value::Null
                }
            }
        };
        let node = Node {
            pos,
            kind: NodeKind::Scalar(value),
        };
        self.push_value(node, anchor, 1);
    }
}

impl MarkedEventReceiver for TreeBuilder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        let pos = Position::from(mark);
        let size = match &ev {
            Event::Alias(id) => self.anchors.get(id).map_or(1, |(_, n)| *n),
            Event::Scalar(..) | Event::SequenceStart(..) | Event::MappingStart(..) => 1,
            _ => 0,
        };
        if self.refused && !matches!(ev, Event::DocumentStart | Event::DocumentEnd) {
            return;
        }
        if size > 0 && !self.count(size, pos) {
            return;
        }
        match ev {
            Event::DocumentStart => {
                self.doc_pos = pos;
                self.doc_root = None;
                self.anchors.clear();
                self.nodes = 0;
                self.refused = false;
            }
            Event::DocumentEnd => {
                // A document holding nothing (`---` at the end of a file) is a null scalar.
                let root = self
                    .doc_root
                    .take()
                    .filter(|n| n.kind != NodeKind::Scalar(Value::Null));
                self.docs.push(LocatedDocument {
                    pos: self.doc_pos,
                    root,
                    errors: std::mem::take(&mut self.errors),
                });
            }
            Event::Scalar(text, style, anchor, tag) => self.scalar(text, style, tag, anchor, pos),
            Event::SequenceStart(anchor, _) => self.stack.push(Open {
                node: Node {
                    pos,
                    kind: NodeKind::Seq(Vec::new()),
                },
                anchor,
                pending_key: None,
                size: 1,
            }),
            Event::MappingStart(anchor, _) => self.stack.push(Open {
                node: Node {
                    pos,
                    kind: NodeKind::Map(Vec::new()),
                },
                anchor,
                pending_key: None,
                size: 1,
            }),
            Event::SequenceEnd | Event::MappingEnd => {
                if let Some(open) = self.stack.pop() {
                    // Its nodes were counted as they came; its size goes to its parent.
                    self.push_value(open.node, open.anchor, open.size);
                }
            }
            Event::Alias(id) => {
                let (node, size) = self.anchors.get(&id).cloned().unwrap_or((
                    Node {
                        pos,
                        kind: NodeKind::Scalar(Value::Null),
                    },
                    1,
                ));
                self.push_value(node, 0, size);
            }
            Event::Nothing | Event::StreamStart | Event::StreamEnd => {}
        }
    }
}

fn scalar_key(node: &Node) -> Option<String> {
    match &node.kind {
        NodeKind::Scalar(Value::String(s)) => Some(s.clone()),
        NodeKind::Scalar(Value::Null) => Some(String::new()),
        NodeKind::Scalar(v) => Some(v.to_string()),
        _ => None,
    }
}

/// Resolves a plain scalar with the YAML 1.2 core schema.
fn resolve_plain(text: &str) -> Result<Value, String> {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Ok(Value::Null),
        "true" | "True" | "TRUE" => return Ok(Value::Bool(true)),
        "false" | "False" | "FALSE" => return Ok(Value::Bool(false)),
        _ => {}
    }
    if let Some(n) = resolve_int(text) {
        return Ok(Value::Number(n));
    }
    let lower = text.to_ascii_lowercase();
    if matches!(lower.trim_start_matches(['-', '+']), ".inf" | ".nan") {
        return Err(format!(
            "{text}: infinite and NaN numbers are not supported"
        ));
    }
    if looks_like_float(text)
        && let Some(n) = text.parse::<f64>().ok().and_then(Number::from_f64)
    {
        return Ok(Value::Number(n));
    }
    Ok(Value::String(text.to_string()))
}

fn resolve_int(text: &str) -> Option<Number> {
    let (neg, digits) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let (radix, body) = if let Some(h) = digits.strip_prefix("0x") {
        (16, h)
    } else if let Some(o) = digits.strip_prefix("0o") {
        (8, o)
    } else {
        (10, digits)
    };
    if body.is_empty() || !body.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let magnitude = u64::from_str_radix(body, radix).ok()?;
    if neg {
        let v = i64::try_from(magnitude).ok()?;
        Some(Number::from(-v))
    } else {
        Some(Number::from(magnitude))
    }
}

fn looks_like_float(text: &str) -> bool {
    let body = text.trim_start_matches(['-', '+']);
    let (mantissa, exponent) = match body.find(['e', 'E']) {
        Some(i) => (&body[..i], Some(&body[i + 1..])),
        None => (body, None),
    };
    let mantissa_ok = {
        let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
        (!int.is_empty() || !frac.is_empty())
            && int.chars().all(|c| c.is_ascii_digit())
            && frac.chars().all(|c| c.is_ascii_digit())
            && (mantissa.contains('.') || exponent.is_some())
    };
    let exponent_ok = exponent.is_none_or(|e| {
        let e = e.trim_start_matches(['-', '+']);
        !e.is_empty() && e.chars().all(|c| c.is_ascii_digit())
    });
    mantissa_ok && exponent_ok
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn one(text: &str) -> Node {
        let docs = parse_stream(text).unwrap();
        assert_eq!(docs.len(), 1);
        assert!(docs[0].errors.is_empty(), "{:?}", docs[0].errors);
        docs[0].root.clone().unwrap()
    }

    #[test]
    fn resolves_core_schema_scalars() {
        let n = one("a: 1\nb: '1'\nc: yes\nd: true\ne: ~\nf: 1.5\ng: 0x10\nh: 1e3\n");
        assert_eq!(
            n.to_json(),
            json!({"a": 1, "b": "1", "c": "yes", "d": true, "e": null, "f": 1.5, "g": 16, "h": 1000.0})
        );
    }

    #[test]
    fn locates_keys_and_values() {
        let n = one("spec:\n  agents:\n    - name: a\n    - name: b\n      provider: x\n");
        let path = FieldPath::parse("spec.agents[1].provider");
        assert_eq!(n.locate(&path, true), Position { line: 5, column: 7 });
        assert_eq!(
            n.locate(&path, false),
            Position {
                line: 5,
                column: 17
            }
        );
        // A missing key is located at its parent mapping.
        let missing = FieldPath::parse("spec.agents[0].model");
        assert_eq!(n.locate(&missing, false).line, 3);
    }

    #[test]
    fn multi_document_positions() {
        let docs = parse_stream("a: 1\n---\nb: 2\n---\n").unwrap();
        assert_eq!(docs.len(), 3);
        let b = docs[1].root.as_ref().unwrap();
        assert_eq!(b.locate(&FieldPath::parse("b"), true).line, 3);
        assert!(docs[2].root.is_none());
    }

    #[test]
    fn duplicate_keys_are_errors() {
        let docs = parse_stream("a: 1\na: 2\n").unwrap();
        assert_eq!(docs[0].errors.len(), 1);
        assert_eq!(docs[0].errors[0].pos, Position { line: 2, column: 1 });
    }

    #[test]
    fn syntax_error_has_position() {
        let err = parse_stream("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(err.message.starts_with("invalid YAML"));
        assert!(err.pos.line >= 1);
    }

    #[test]
    fn anchors_and_aliases_copy_nodes() {
        let n = one("x: &v {a: 1}\ny: *v\nz: &s hi\nw: *s\n");
        assert_eq!(
            n.to_json(),
            json!({"x": {"a": 1}, "y": {"a": 1}, "z": "hi", "w": "hi"})
        );
    }

    #[test]
    fn path_display() {
        let p = FieldPath::root()
            .key("metadata")
            .key("labels")
            .key("app.kubernetes.io/name");
        assert_eq!(
            p.to_string(),
            r#"metadata.labels["app.kubernetes.io/name"]"#
        );
        assert_eq!(
            FieldPath::parse("spec.agents[2].provider").to_string(),
            "spec.agents[2].provider"
        );
    }
}
