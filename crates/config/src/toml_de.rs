//! Deserializing a TOML document into a tree in which every key and value knows its
//! byte span, where toml knows it.
//!
//! Why not `#[derive(Deserialize)]` with `deny_unknown_fields`: serde's errors know
//! neither the table (`[tool.capstan.web]`) nor, for a wrong type, the key; and
//! `toml::Spanned<T>` cannot wrap an implicit table (`[processes.tasks]` without a
//! `[processes]` line, or `[tool.capstan]`), which has no span, and then fails. So
//! this module speaks the span protocol of toml's deserializer itself and falls back
//! to "no span" where toml has none.

use std::fmt;
use std::ops::Range;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

// The struct name and fields by which toml's deserializer recognises a request for
// a span (serde_spanned's protocol, what `toml::Spanned<T>` sends). Pinned by toml
// 0.8; the test `toml_tree::tests::spans_point_at_keys_and_values` fails if it
// ever changes.
const SPANNED_NAME: &str = "$__serde_spanned_private_Spanned";
const SPANNED_START: &str = "$__serde_spanned_private_start";
const SPANNED_END: &str = "$__serde_spanned_private_end";
const SPANNED_VALUE: &str = "$__serde_spanned_private_value";
const SPANNED_FIELDS: &[&str] = &[SPANNED_START, SPANNED_END, SPANNED_VALUE];
// toml hands a date-time to `deserialize_any` as a one-entry map with this key.
const DATETIME_KEY: &str = "$__toml_private_datetime";

/// Byte range in the file, when toml knows it.
pub(crate) type Span = Option<Range<usize>>;

/// A value and where it is.
#[derive(Debug)]
pub(crate) struct Item {
    pub span: Span,
    pub value: Value,
}

/// A TOML value; tables keep file order.
#[derive(Debug)]
pub(crate) enum Value {
    String(String),
    Integer(i64),
    Float,
    Boolean(bool),
    Datetime,
    Array(Vec<Item>),
    Table(Vec<Entry>),
}

/// One `key = value` of a table.
#[derive(Debug)]
pub(crate) struct Entry {
    pub key: String,
    pub key_span: Span,
    pub item: Item,
}

impl Value {
    /// "a string", "an integer", ... for "expected X, found Y" messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::String(_) => "a string",
            Value::Integer(_) => "an integer",
            Value::Float => "a float",
            Value::Boolean(_) => "a boolean",
            Value::Datetime => "a date",
            Value::Array(_) => "an array",
            Value::Table(_) => "a table",
        }
    }
}

/// Parses a whole document; the top level is always a table.
pub(crate) fn parse(text: &str) -> Result<Item, toml::de::Error> {
    let value = ValueSeed.deserialize(toml::Deserializer::new(text))?;
    Ok(Item {
        span: Some(0..text.len()),
        value,
    })
}

/// Asks for a span, then the value.
struct ItemSeed;

impl<'de> DeserializeSeed<'de> for ItemSeed {
    type Value = Item;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Item, D::Error> {
        d.deserialize_struct(SPANNED_NAME, SPANNED_FIELDS, ItemVisitor)
    }
}

/// Either the span protocol (a map of start, end, value) or, where toml has no span,
/// the bare value.
struct ItemVisitor;

impl<'de> Visitor<'de> for ItemVisitor {
    type Value = Item;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a TOML value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Item, A::Error> {
        let Some((first, first_span)) = map.next_key_seed(KeySeed)? else {
            return Ok(Item {
                span: None,
                value: Value::Table(Vec::new()),
            });
        };
        if first != SPANNED_START {
            // A table (or date-time) that toml gave no span.
            let value = visit_table(first, first_span, map)?;
            return Ok(Item { span: None, value });
        }
        let start: usize = map.next_value()?;
        let end: usize = match map.next_key_seed(KeySeed)? {
            Some((k, _)) if k == SPANNED_END => map.next_value()?,
            _ => return Err(de::Error::custom("malformed span")),
        };
        let value = match map.next_key_seed(KeySeed)? {
            Some((k, _)) if k == SPANNED_VALUE => map.next_value_seed(ValueSeed)?,
            _ => return Err(de::Error::custom("malformed span")),
        };
        Ok(Item {
            span: Some(start..end),
            value,
        })
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Item, E> {
        ValueVisitor.visit_str(v).map(unspanned)
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Item, E> {
        ValueVisitor.visit_string(v).map(unspanned)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Item, E> {
        ValueVisitor.visit_i64(v).map(unspanned)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Item, E> {
        ValueVisitor.visit_u64(v).map(unspanned)
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Item, E> {
        ValueVisitor.visit_f64(v).map(unspanned)
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Item, E> {
        ValueVisitor.visit_bool(v).map(unspanned)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Item, A::Error> {
        ValueVisitor.visit_seq(seq).map(unspanned)
    }
}

fn unspanned(value: Value) -> Item {
    Item { span: None, value }
}

/// The value itself, without asking for a span (asking again would loop).
struct ValueSeed;

impl<'de> DeserializeSeed<'de> for ValueSeed {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a TOML value")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Integer(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        i64::try_from(v)
            .map(Value::Integer)
            .map_err(|_| E::custom("integer out of range"))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Value, E> {
        Ok(Value::Float)
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Boolean(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(ItemSeed)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        match map.next_key_seed(KeySeed)? {
            None => Ok(Value::Table(Vec::new())),
            Some((key, span)) => visit_table(key, span, map),
        }
    }
}

/// The rest of a table whose first key has been read.
fn visit_table<'de, A: MapAccess<'de>>(
    first: String,
    first_span: Span,
    mut map: A,
) -> Result<Value, A::Error> {
    if first == DATETIME_KEY {
        map.next_value::<de::IgnoredAny>()?;
        return Ok(Value::Datetime);
    }
    let mut entries = Vec::new();
    let mut next = Some((first, first_span));
    while let Some((key, key_span)) = next {
        let item = map.next_value_seed(ItemSeed)?;
        entries.push(Entry {
            key,
            key_span,
            item,
        });
        next = map.next_key_seed(KeySeed)?;
    }
    Ok(Value::Table(entries))
}

/// A key, with its span when toml has one.
struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = (String, Span);
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_struct(SPANNED_NAME, SPANNED_FIELDS, KeyVisitor)
    }
}

struct KeyVisitor;

impl<'de> Visitor<'de> for KeyVisitor {
    type Value = (String, Span);

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a TOML key")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok((v.to_owned(), None))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut start = None;
        let mut end = None;
        let mut key = None;
        while let Some(field) = map.next_key::<String>()? {
            match field.as_str() {
                SPANNED_START => start = Some(map.next_value::<usize>()?),
                SPANNED_END => end = Some(map.next_value::<usize>()?),
                SPANNED_VALUE => key = Some(map.next_value::<String>()?),
                _ => return Err(de::Error::custom("malformed key span")),
            }
        }
        let key = key.ok_or_else(|| de::Error::custom("malformed key span"))?;
        Ok((key, start.zip(end).map(|(s, e)| s..e)))
    }
}
