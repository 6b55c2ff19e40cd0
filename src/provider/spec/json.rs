//! Serde plumbing for spec tables whose keys are data: maps that keep the order the spec wrote
//! (form fields go out in that order), and JSON bodies whose strings are templates.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

use super::template::Template;

/// A table read in document order; a key written twice is an error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Ordered<K, V>(pub(super) Vec<(K, V)>);

impl<K, V> Default for Ordered<K, V> {
    fn default() -> Self {
        Self(Vec::new())
    }
}

impl<K, V> Ordered<K, V> {
    pub(super) fn iter(&self) -> impl Iterator<Item = &(K, V)> {
        self.0.iter()
    }
}

impl<'de, K, V> Deserialize<'de> for Ordered<K, V>
where
    K: Deserialize<'de> + PartialEq,
    V: Deserialize<'de>,
{
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct OrderedVisitor<K, V>(PhantomData<(K, V)>);

        impl<'de, K, V> Visitor<'de> for OrderedVisitor<K, V>
        where
            K: Deserialize<'de> + PartialEq,
            V: Deserialize<'de>,
        {
            type Value = Ordered<K, V>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a table")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut entries: Vec<(K, V)> = Vec::new();
                while let Some(key) = map.next_key::<K>()? {
                    if entries.iter().any(|(k, _)| *k == key) {
                        return Err(de::Error::custom("a key written twice"));
                    }
                    let value = map.next_value()?;
                    entries.push((key, value));
                }
                Ok(Ordered(entries))
            }
        }

        deserializer.deserialize_map(OrderedVisitor(PhantomData))
    }
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
        deserializer.deserialize_any(JsonNodeVisitor)
    }
}

struct JsonNodeVisitor;

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
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<JsonNode>()? {
            items.push(item.into_literal().ok_or_else(|| {
                de::Error::custom("placeholders are not supported inside arrays")
            })?);
        }
        Ok(JsonNode::Literal(serde_json::Value::Array(items)))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<JsonNode, A::Error> {
        let ordered: Ordered<String, JsonNode> =
            Deserialize::deserialize(de::value::MapAccessDeserializer::new(map))?;
        // How the toml crate hands over a TOML datetime: as a map of one private key.
        if ordered
            .0
            .iter()
            .any(|(key, _)| key == "$__toml_private_datetime")
        {
            return Err(de::Error::custom(
                "TOML datetimes are not supported in a body: write them as strings",
            ));
        }
        Ok(JsonNode::Object(ordered.0))
    }
}
