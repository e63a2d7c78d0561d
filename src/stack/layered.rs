//! Deserialising the layers of an environment as [`merge`] would merge
//! them, without building the merged value.
//!
//! Resolving an environment used to clone the whole base and merge each
//! overlay into the copy; that clone was about 9% of the instructions of
//! rendering the built-in stacks. A [`Layered`] view is read in place: a
//! node written by one layer only is deserialised straight from that layer's
//! value, and only mappings that several layers write are merged, key by
//! key, as the deserialiser visits them.
//!
//! The guarantee: when `T::deserialize(Layered::new(layers))` succeeds, its
//! result is what deserialising the merged value gives. The view makes the
//! same visitor calls, in the same order, with the very same leaf values.
//! When it fails, its error is not meant for the user: the caller merges
//! the layers and deserialises again, which reports the error with its path.
//!
//! [`merge`]: super::resolve::merge

use indexmap::IndexMap;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, Visitor};
use serde_yaml::{Error, Mapping, Value};

/// The values that layers, in the order they apply, wrote at one node.
pub struct Layered<'a> {
    view: View<'a>,
}

enum View<'a> {
    /// One value decides the node: the last one that is not a mapping, or
    /// a mapping no earlier layer merges with.
    One(&'a Value),
    /// Mappings merged key by key.
    Maps(Merge<'a>),
}

/// Mappings merged key by key, the first one applied first: two or more,
/// or one overlay's mapping whose `null`s must be dropped.
struct Merge<'a> {
    maps: Vec<&'a Mapping>,
    /// The first mapping is an overlay's, not the base's: its `null`s
    /// delete nothing, and are dropped.
    patch: bool,
}

impl<'a> Layered<'a> {
    /// The node `values` write, in the order they apply: the base's, then
    /// the overlays'. A value that is not a mapping replaces whatever came
    /// before it, and a mapping replaces a value that is not one; mappings
    /// merge. Empty: `null`.
    pub fn new(values: impl IntoIterator<Item = &'a Value>) -> Layered<'a> {
        Layered::layers(values, false)
    }

    /// As [`Layered::new`]; `patch`: the first value is an overlay's too.
    fn layers(values: impl IntoIterator<Item = &'a Value>, patch: bool) -> Layered<'a> {
        // The mappings merged since the last value that is not one.
        let mut maps: Vec<&'a Mapping> = Vec::new();
        let mut first_is_patch = patch;
        let mut last: Option<&'a Value> = None;
        for (i, v) in values.into_iter().enumerate() {
            match v {
                Value::Mapping(m) => {
                    if maps.is_empty() {
                        first_is_patch = patch || i > 0;
                    }
                    maps.push(m)
                }
                _ => maps.clear(),
            }
            last = Some(v);
        }
        static NULL: Value = Value::Null;
        let merge = maps.len() >= 2 || (first_is_patch && maps.first().is_some_and(|m| holds_null(m)));
        let view =
            if merge { View::Maps(Merge { maps, patch: first_is_patch }) } else { View::One(last.unwrap_or(&NULL)) };
        Layered { view }
    }
}

/// Whether a `null` is a value of `m` or of a mapping nested in it.
fn holds_null(m: &Mapping) -> bool {
    m.values().any(|v| match v {
        Value::Null => true,
        Value::Mapping(inner) => holds_null(inner),
        _ => false,
    })
}

/// The layers of one key of merged mappings; `patch`: the first is an
/// overlay's.
type Layers<'a> = (Vec<&'a Value>, bool);

/// The entries of merged mappings in the order the merge leaves them: the
/// first mapping's (without its `null`s if it is an overlay's), then each
/// later one's in turn: a new key is added at the end, a `null` value
/// removes the key (the others keep their order), and any other value
/// becomes one more layer of the key.
fn entries<'a>(merge: &Merge<'a>) -> Vec<(&'a Value, Layers<'a>)> {
    let Some((first, rest)) = merge.maps.split_first() else { return Vec::new() };
    // foldhash, as `model::Map`: the keys are hashed once per layer.
    let mut merged: IndexMap<&'a Value, Layers<'a>, foldhash::fast::RandomState> =
        IndexMap::with_capacity_and_hasher(first.len(), Default::default());
    for (k, v) in first.iter() {
        if !(merge.patch && v.is_null()) {
            merged.insert(k, (vec![v], merge.patch));
        }
    }
    for m in rest {
        for (k, v) in m.iter() {
            if v.is_null() {
                merged.shift_remove(k);
            } else if let Some((layers, _)) = merged.get_mut(k) {
                layers.push(v);
            } else {
                merged.insert(k, (vec![v], true));
            }
        }
    }
    merged.into_iter().collect()
}

/// A merged mapping as a `MapAccess`, like serde_yaml's for a `&Mapping`.
struct Entries<'a> {
    iter: std::vec::IntoIter<(&'a Value, Layers<'a>)>,
    value: Option<Layers<'a>>,
}

impl<'de> MapAccess<'de> for Entries<'de> {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, Error> {
        match self.iter.next() {
            Some((k, layers)) => {
                self.value = Some(layers);
                seed.deserialize(k).map(Some)
            }
            None => Ok(None),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        match self.value.take() {
            Some((layers, patch)) => seed.deserialize(Layered::layers(layers, patch)),
            None => Err(de::Error::custom("value is missing")),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.iter.len())
    }
}

/// `visit_map` over merged mappings, refusing a visitor that stops early
/// as serde_yaml does for a mapping.
fn visit_maps<'de, V: Visitor<'de>>(merge: &Merge<'de>, visitor: V) -> Result<V::Value, Error> {
    let entries = entries(merge);
    let len = entries.len();
    let mut access = Entries { iter: entries.into_iter(), value: None };
    let value = visitor.visit_map(&mut access)?;
    if access.iter.len() == 0 { Ok(value) } else { Err(de::Error::invalid_length(len, &"fewer elements in map")) }
}

/// What a merged mapping cannot be deserialised as (a mapping is not one
/// either): the caller falls back to the merged value, which says why.
fn not_a<T>(what: &str) -> Result<T, Error> {
    Err(de::Error::custom(format_args!("a merged mapping is not {what}")))
}

/// `Deserializer` methods: a single value answers itself, as serde_yaml's
/// `&Value` does; merged mappings answer with the expression after the
/// mappings and the visitor are bound.
macro_rules! methods {
    ($($method:ident($($arg:ident: $ty:ty),*) |$maps:pat_param, $visitor:ident| $merged:expr;)*) => {$(
        fn $method<V: Visitor<'de>>(self, $($arg: $ty,)* $visitor: V) -> Result<V::Value, Error> {
            match self.view {
                View::One(v) => v.$method($($arg,)* $visitor),
                View::Maps($maps) => $merged,
            }
        }
    )*};
}

impl<'de> Deserializer<'de> for Layered<'de> {
    type Error = Error;

    methods! {
        deserialize_any() |maps, visitor| visit_maps(&maps, visitor);
        deserialize_map() |maps, visitor| visit_maps(&maps, visitor);
        deserialize_struct(name: &'static str, fields: &'static [&'static str]) |maps, visitor| visit_maps(&maps, visitor);
        deserialize_option() |maps, visitor| visitor.visit_some(Layered { view: View::Maps(maps) });
        deserialize_newtype_struct(name: &'static str) |maps, visitor| {
            visitor.visit_newtype_struct(Layered { view: View::Maps(maps) })
        };
        deserialize_ignored_any() |_, visitor| visitor.visit_unit();
        // What a mapping is not either.
        deserialize_enum(name: &'static str, variants: &'static [&'static str]) |_, _visitor| not_a("an enum");
        deserialize_tuple(len: usize) |_, _visitor| not_a("a tuple");
        deserialize_tuple_struct(name: &'static str, len: usize) |_, _visitor| not_a("a tuple");
        deserialize_unit_struct(name: &'static str) |_, _visitor| not_a("a unit");
        deserialize_bool() |_, _visitor| not_a("a boolean");
        deserialize_i8() |_, _visitor| not_a("an integer");
        deserialize_i16() |_, _visitor| not_a("an integer");
        deserialize_i32() |_, _visitor| not_a("an integer");
        deserialize_i64() |_, _visitor| not_a("an integer");
        deserialize_i128() |_, _visitor| not_a("an integer");
        deserialize_u8() |_, _visitor| not_a("an integer");
        deserialize_u16() |_, _visitor| not_a("an integer");
        deserialize_u32() |_, _visitor| not_a("an integer");
        deserialize_u64() |_, _visitor| not_a("an integer");
        deserialize_u128() |_, _visitor| not_a("an integer");
        deserialize_f32() |_, _visitor| not_a("a number");
        deserialize_f64() |_, _visitor| not_a("a number");
        deserialize_char() |_, _visitor| not_a("a character");
        deserialize_str() |_, _visitor| not_a("a string");
        deserialize_string() |_, _visitor| not_a("a string");
        deserialize_bytes() |_, _visitor| not_a("bytes");
        deserialize_byte_buf() |_, _visitor| not_a("bytes");
        deserialize_unit() |_, _visitor| not_a("a unit");
        deserialize_seq() |_, _visitor| not_a("a sequence");
        deserialize_identifier() |_, _visitor| not_a("an identifier");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stack::resolve::merge;

    fn yaml(s: &str) -> Value {
        serde_yaml::from_str(s).unwrap()
    }

    /// Deserialising the view gives what deserialising the merged value gives.
    fn same(layers: &[&str]) {
        let values: Vec<Value> = layers.iter().map(|s| yaml(s)).collect();
        let mut merged = values[0].clone();
        for v in &values[1..] {
            merge(&mut merged, v.clone());
        }
        let viewed = Value::deserialize(Layered::new(values.iter())).unwrap();
        assert_eq!(serde_yaml::to_string(&viewed).unwrap(), serde_yaml::to_string(&merged).unwrap(), "{layers:?}");
    }

    use serde::Deserialize;

    #[test]
    fn merges_like_merge() {
        same(&["a: 1"]);
        same(&["a: 1", "b: 2"]);
        same(&["{a: 1, b: 2, c: 3}", "{a: null}"]);
        same(&["{a: 1, b: 2, c: 3}", "{b: null, d: 4}", "{a: 5}"]);
        same(&["{a: {x: 1, y: 2}}", "{a: {y: null, z: 3}}", "{a: {x: 0}}"]);
        // A new key's nulls delete nothing: they are dropped, however deep.
        same(&["{a: 1}", "{b: {x: null, y: 1}}"]);
        same(&["{a: 1}", "{b: {x: null, y: 1}}", "{b: {y: null}}"]);
        same(&["{a: 1}", "{b: {c: {x: null}, d: [null]}}"]);
        same(&["{a: 3}", "{a: {x: null, y: {z: null}}}"]);
        // Replacing: a scalar or a list replaces a mapping and the other way round.
        same(&["{a: {x: 1}}", "{a: [1, 2]}", "{a: {y: 2}}"]);
        same(&["{a: {x: 1}}", "{a: 3}"]);
        same(&["{a: 3}", "{a: {x: 1}}", "{a: {y: null}}"]);
        // A null in the base is a value; deleting an absent key does nothing.
        same(&["{a: null, b: 1}", "{c: null}"]);
        same(&["{a: {b: {c: {d: 1}}}}", "{a: {b: {c: {e: 2}}}}", "{a: {b: {f: 3}}}"]);
    }

    mod random {
        use super::*;
        use proptest::prelude::*;

        fn tree() -> impl Strategy<Value = Value> {
            let leaf = prop_oneof![
                Just(Value::Null),
                (0u8..4).prop_map(Value::from),
                "[xy]{0,2}".prop_map(Value::from),
                prop::collection::vec(0u8..3, 0..3).prop_map(Value::from),
            ];
            leaf.prop_recursive(4, 40, 5, |inner| {
                prop::collection::vec(("[a-e]", inner), 0..5)
                    .prop_map(|entries| Value::Mapping(entries.into_iter().map(|(k, v)| (Value::from(k), v)).collect()))
            })
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 2000, failure_persistence: None, ..ProptestConfig::default() })]
            #[test]
            fn random_layers_merge_like_merge(layers in prop::collection::vec(tree(), 1..5)) {
                let mut merged = layers[0].clone();
                for v in &layers[1..] {
                    merge(&mut merged, v.clone());
                }
                let viewed = Value::deserialize(Layered::new(layers.iter())).unwrap();
                prop_assert_eq!(serde_yaml::to_string(&viewed).unwrap(), serde_yaml::to_string(&merged).unwrap());
            }
        }
    }

    /// An overlay's `null` deletes; it is never kept as a value, even in a
    /// map no lower layer has.
    #[test]
    fn an_overlays_nulls_are_never_values() {
        for (layers, want) in [
            (&["{a: 1}", "{b: {x: null, y: 1}}"][..], "{a: 1, b: {y: 1}}"),
            (&["{a: 3}", "{a: {x: null, y: {z: null}}}"][..], "{a: {y: {}}}"),
            (&["{a: null}", "{b: null}"][..], "{a: null}"),
            (&["{a: {x: 1}}", "{a: {x: null, y: [null]}}"][..], "{a: {y: [null]}}"),
        ] {
            let values: Vec<Value> = layers.iter().map(|s| yaml(s)).collect();
            let mut merged = values[0].clone();
            for v in &values[1..] {
                merge(&mut merged, v.clone());
            }
            assert_eq!(merged, yaml(want), "{layers:?}");
            assert_eq!(Value::deserialize(Layered::new(values.iter())).unwrap(), yaml(want), "{layers:?}");
        }
    }

    #[test]
    fn deleting_keeps_the_order_of_the_others() {
        let values = [yaml("{a: 1, b: 2, c: 3, d: 4}"), yaml("{b: null}")];
        let viewed = Value::deserialize(Layered::new(values.iter())).unwrap();
        let keys: Vec<&str> = viewed.as_mapping().unwrap().keys().filter_map(Value::as_str).collect();
        assert_eq!(keys, ["a", "c", "d"]);
    }

    #[test]
    fn a_merged_mapping_refuses_what_a_mapping_is_not() {
        let values = [yaml("{a: 1}"), yaml("{b: 2}")];
        assert!(String::deserialize(Layered::new(values.iter())).is_err());
        assert!(Vec::<Value>::deserialize(Layered::new(values.iter())).is_err());
        assert!(<Option<IndexMap<String, u8>>>::deserialize(Layered::new(values.iter())).unwrap().is_some());
    }

    #[test]
    fn a_visitor_that_stops_early_is_refused() {
        struct First;
        impl<'de> Visitor<'de> for First {
            type Value = String;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a map")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<String, A::Error> {
                Ok(a.next_key::<String>()?.unwrap_or_default())
            }
        }
        let values = [yaml("{a: 1}"), yaml("{b: 2}")];
        assert!(Layered::new(values.iter()).deserialize_map(First).is_err());
        assert!(yaml("{a: 1, b: 2}").deserialize_map(First).is_err());
    }
}
