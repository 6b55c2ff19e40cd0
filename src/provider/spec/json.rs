//! Serde plumbing for spec tables whose keys are data: maps that keep the order the spec wrote
//! (form fields go out in that order), and JSON bodies whose strings are templates.

use std::collections::HashSet;
use std::fmt;
use std::hash::Hash;
use std::marker::PhantomData;

use serde::de::{self, Deserialize, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

use super::template::{Name, Template};

/// How many fields one JSON object of a body holds at most.
pub(super) const MAX_JSON_FIELDS: usize = 1000;

/// How deep a JSON body nests at most, arrays included: the body itself is level 1.
pub(super) const MAX_JSON_DEPTH: usize = 16;

/// A table read in document order, with at most `MAX` entries; a key written twice is an error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Ordered<K, V, const MAX: usize>(pub(super) Vec<(K, V)>);

impl<K, V, const MAX: usize> Default for Ordered<K, V, MAX> {
    fn default() -> Self {
        Self(Vec::new())
    }
}

impl<K, V, const MAX: usize> Ordered<K, V, MAX> {
    pub(super) fn iter(&self) -> impl Iterator<Item = &(K, V)> {
        self.0.iter()
    }
}

impl<'de, K, V, const MAX: usize> Deserialize<'de> for Ordered<K, V, MAX>
where
    K: Deserialize<'de> + Eq + Hash + Clone,
    V: Deserialize<'de>,
{
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct OrderedVisitor<K, V, const MAX: usize>(PhantomData<(K, V)>);

        impl<'de, K, V, const MAX: usize> Visitor<'de> for OrderedVisitor<K, V, MAX>
        where
            K: Deserialize<'de> + Eq + Hash + Clone,
            V: Deserialize<'de>,
        {
            type Value = Ordered<K, V, MAX>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a table")
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                entries(map, MAX, |map| map.next_value()).map(Ordered)
            }
        }

        deserializer.deserialize_map(OrderedVisitor(PhantomData))
    }
}

/// The entries of `map` in document order, each value read by `value`.
///
/// NOTE: linear in the entries (a hash set finds keys written twice), and it stops at the first
/// entry past `max`: a spec's size never costs more than reading it.
fn entries<'de, A, K, V>(
    mut map: A,
    max: usize,
    mut value: impl FnMut(&mut A) -> Result<V, A::Error>,
) -> Result<Vec<(K, V)>, A::Error>
where
    A: MapAccess<'de>,
    K: Deserialize<'de> + Eq + Hash + Clone,
{
    let mut entries = Vec::new();
    let mut seen = HashSet::new();
    while let Some(key) = map.next_key::<K>()? {
        if !seen.insert(key.clone()) {
            return Err(de::Error::custom("a key written twice"));
        }
        if entries.len() == max {
            return Err(de::Error::custom(format!("more than {max} entries")));
        }
        let value = value(&mut map)?;
        entries.push((key, value));
    }
    Ok(entries)
}

/// A JSON body as a spec writes it: strings are templates, other values literals.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum JsonNode {
    /// A string, placeholders allowed.
    Text(Template),
    /// A number, boolean, `null`, or an array (whose strings are plain text).
    Literal(serde_json::Value),
    /// An object, in the order the spec wrote it.
    Object(Vec<(String, JsonNode)>),
}

impl JsonNode {
    /// The node as plain JSON, when it holds no placeholder.
    fn into_literal(self) -> Option<serde_json::Value> {
        Some(match self {
            JsonNode::Text(template) => {
                serde_json::Value::String(template.as_literal()?.to_owned())
            }
            JsonNode::Literal(value) => value,
            JsonNode::Object(entries) => serde_json::Value::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| Some((k, v.into_literal()?)))
                    .collect::<Option<_>>()?,
            ),
        })
    }
}

impl<'de> Deserialize<'de> for JsonNode {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        JsonNodeVisitor { depth: 0 }.deserialize(deserializer)
    }
}

/// Reads one node; `depth` counts the objects and arrays around it.
#[derive(Clone, Copy)]
struct JsonNodeVisitor {
    depth: usize,
}

impl JsonNodeVisitor {
    /// The visitor for the nodes inside an object or array at this depth.
    fn inside<E: de::Error>(self) -> Result<Self, E> {
        if self.depth < MAX_JSON_DEPTH {
            Ok(Self {
                depth: self.depth + 1,
            })
        } else {
            Err(E::custom(format!(
                "a body nests at most {MAX_JSON_DEPTH} objects or arrays deep"
            )))
        }
    }
}

impl<'de> DeserializeSeed<'de> for JsonNodeVisitor {
    type Value = JsonNode;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<JsonNode, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for JsonNodeVisitor {
    type Value = JsonNode;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<JsonNode, E> {
        Template::parse(v).map(JsonNode::Text).map_err(E::custom)
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<JsonNode, E> {
        Ok(JsonNode::Literal(v.into()))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<JsonNode, E> {
        Ok(JsonNode::Literal(v.into()))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<JsonNode, E> {
        Ok(JsonNode::Literal(v.into()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<JsonNode, E> {
        serde_json::Number::from_f64(v)
            .map(|n| JsonNode::Literal(n.into()))
            .ok_or_else(|| E::custom("a number JSON cannot hold (NaN or infinite)"))
    }

    fn visit_unit<E: de::Error>(self) -> Result<JsonNode, E> {
        Ok(JsonNode::Literal(serde_json::Value::Null))
    }

    fn visit_none<E: de::Error>(self) -> Result<JsonNode, E> {
        self.visit_unit()
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<JsonNode, A::Error> {
        let inside = self.inside()?;
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(inside)? {
            items.push(item.into_literal().ok_or_else(|| {
                de::Error::custom("placeholders are not supported inside arrays")
            })?);
        }
        Ok(JsonNode::Literal(serde_json::Value::Array(items)))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<JsonNode, A::Error> {
        let inside = self.inside()?;
        let entries: Vec<(Name, JsonNode)> =
            entries(map, MAX_JSON_FIELDS, |map| map.next_value_seed(inside))?;
        // How the toml crate hands over a TOML datetime: as a map of one private key.
        if entries
            .iter()
            .any(|(key, _)| key.0 == "$__toml_private_datetime")
        {
            return Err(de::Error::custom(
                "TOML datetimes are not supported in a body: write them as strings",
            ));
        }
        Ok(JsonNode::Object(
            entries
                .into_iter()
                .map(|(key, node)| (key.0, node))
                .collect(),
        ))
    }
}
