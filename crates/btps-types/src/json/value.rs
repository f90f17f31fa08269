//! [`Value`] and [`Object`].

use std::fmt;

use super::JsString;

/// A JSON value as JavaScript's `JSON.parse` produces it.
///
/// Every number is an IEEE-754 double, as in JavaScript. Equality is JavaScript-like for
/// numbers (`0 == -0`), which coincides with "serializes to the same text".
#[derive(Clone, PartialEq, Default)]
pub enum Value {
    /// `null`.
    #[default]
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// A finite double.
    Number(f64),
    /// A string (lone surrogates preserved).
    String(JsString),
    /// An array.
    Array(Vec<Self>),
    /// An object with members in insertion order.
    Object(Object),
}

impl Value {
    /// The string, when this is a well-formed string value.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Self::String(s) => s.as_str(),
            _ => None,
        }
    }

    /// The string value, lone surrogates included.
    pub fn as_js_string(&self) -> Option<&JsString> {
        match self {
            Self::String(s) => Some(s),
            _ => None,
        }
    }

    /// The object, when this is an object.
    pub fn as_object(&self) -> Option<&Object> {
        match self {
            Self::Object(o) => Some(o),
            _ => None,
        }
    }

    /// The object, mutably.
    pub fn as_object_mut(&mut self) -> Option<&mut Object> {
        match self {
            Self::Object(o) => Some(o),
            _ => None,
        }
    }

    /// The array, when this is an array.
    pub fn as_array(&self) -> Option<&[Self]> {
        match self {
            Self::Array(a) => Some(a),
            _ => None,
        }
    }

    /// The number, when this is a number.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Self::Number(n) => Some(*n),
            _ => None,
        }
    }

    /// The boolean, when this is a boolean.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Self::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// Whether this is `null`.
    pub fn is_null(&self) -> bool {
        matches!(self, Self::Null)
    }

    /// Whether this is a string (well-formed or not).
    pub fn is_string(&self) -> bool {
        matches!(self, Self::String(_))
    }

    /// The JavaScript type name used in error messages (`"object"`, `"array"`, ...).
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::Null => "null",
            Self::Bool(_) => "boolean",
            Self::Number(_) => "number",
            Self::String(_) => "string",
            Self::Array(_) => "array",
            Self::Object(_) => "object",
        }
    }
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&super::to_js_string(self))
    }
}

impl fmt::Display for Value {
    /// Writes the `JSON.stringify` text.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&super::to_js_string(self))
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Self::String(s.into())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Self {
        Self::String(s.into())
    }
}

impl From<JsString> for Value {
    fn from(s: JsString) -> Self {
        Self::String(s)
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Self::Bool(b)
    }
}

impl From<f64> for Value {
    fn from(n: f64) -> Self {
        Self::Number(n)
    }
}

impl From<i64> for Value {
    /// Converts as JavaScript's `Number(n)` would (nearest double).
    fn from(n: i64) -> Self {
        Self::Number(n as f64)
    }
}

impl From<u32> for Value {
    fn from(n: u32) -> Self {
        Self::Number(f64::from(n))
    }
}

impl From<Object> for Value {
    fn from(o: Object) -> Self {
        Self::Object(o)
    }
}

impl From<Vec<Self>> for Value {
    fn from(a: Vec<Self>) -> Self {
        Self::Array(a)
    }
}

impl<T: Into<Self>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map_or(Self::Null, Into::into)
    }
}

/// A JSON object: members in the order they were first inserted, no duplicate keys.
///
/// Member lookup is linear, which is the fastest choice for the dozen members of an artifact.
/// Inserting an existing key replaces its value in place (first position, last value), as a
/// JavaScript property assignment does. The serializer applies JavaScript's array-index key
/// ordering on output; iteration here is in insertion order.
#[derive(Clone, PartialEq, Default)]
pub struct Object {
    members: Vec<(JsString, Value)>,
}

impl Object {
    /// An empty object.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty object with room for `n` members.
    pub fn with_capacity(n: usize) -> Self {
        Self {
            members: Vec::with_capacity(n),
        }
    }

    /// Number of members.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether the object has no members.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// The value of member `key`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.members.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// The value of member `key`, mutably.
    pub fn get_mut(&mut self, key: &str) -> Option<&mut Value> {
        self.members
            .iter_mut()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }

    /// The well-formed string value of member `key`.
    pub fn get_str(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(Value::as_str)
    }

    /// The object value of member `key`.
    pub fn get_object(&self, key: &str) -> Option<&Self> {
        self.get(key).and_then(Value::as_object)
    }

    /// Whether member `key` is present (with any value, `null` included).
    pub fn contains_key(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// Sets member `key`: replaces the value in place when the key exists, else appends.
    /// Returns the previous value.
    pub fn insert(&mut self, key: impl Into<JsString>, value: impl Into<Value>) -> Option<Value> {
        let key = key.into();
        let value = value.into();
        match self.members.iter_mut().find(|(k, _)| *k == key) {
            Some((_, slot)) => Some(std::mem::replace(slot, value)),
            None => {
                self.members.push((key, value));
                None
            }
        }
    }

    /// Builder form of [`insert`](Self::insert).
    #[must_use]
    pub fn with(mut self, key: impl Into<JsString>, value: impl Into<Value>) -> Self {
        self.insert(key, value);
        self
    }

    /// Removes member `key`, keeping the order of the others. Returns its value.
    pub fn remove(&mut self, key: &str) -> Option<Value> {
        let pos = self.members.iter().position(|(k, _)| k == key)?;
        Some(self.members.remove(pos).1)
    }

    /// Members in insertion order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&JsString, &Value)> {
        self.members.iter().map(|(k, v)| (k, v))
    }

    /// Keys in insertion order.
    pub fn keys(&self) -> impl ExactSizeIterator<Item = &JsString> {
        self.members.iter().map(|(k, _)| k)
    }

    /// Position of `key` in insertion order.
    pub fn position(&self, key: &str) -> Option<usize> {
        self.members.iter().position(|(k, _)| k == key)
    }

    /// An object of `members`, which hold no key twice (parser use).
    pub(crate) fn from_members(members: Vec<(JsString, Value)>) -> Self {
        Self { members }
    }

    pub(crate) fn members(&self) -> &[(JsString, Value)] {
        &self.members
    }
}

impl fmt::Debug for Object {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = Vec::new();
        super::write::write_object(&mut out, self);
        f.write_str(&String::from_utf8_lossy(&out))
    }
}

impl<K: Into<JsString>, V: Into<Value>> FromIterator<(K, V)> for Object {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut o = Self::new();
        for (k, v) in iter {
            o.insert(k, v);
        }
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_keeps_first_position() {
        let mut o = Object::new().with("a", 1_u32).with("b", 2_u32);
        assert_eq!(o.insert("a", 3_u32), Some(Value::Number(1.0)));
        let keys: Vec<_> = o.keys().map(|k| k.to_string()).collect();
        assert_eq!(keys, ["a", "b"]);
        assert_eq!(o.get("a"), Some(&Value::Number(3.0)));
    }

    #[test]
    fn remove_keeps_order() {
        let mut o = Object::new()
            .with("a", 1_u32)
            .with("b", 2_u32)
            .with("c", 3_u32);
        assert_eq!(o.remove("b"), Some(Value::Number(2.0)));
        assert_eq!(format!("{o:?}"), r#"{"a":1,"c":3}"#);
        assert_eq!(o.remove("zz"), None);
    }
}
