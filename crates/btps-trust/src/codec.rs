//! Small helpers to read records from and write them to the ordered JSON value.

use btps_types::UnixMillis;
use btps_types::json::{Object, Value};

use crate::{Result, TrustError};

/// Reader over one record object; errors name the member.
pub(crate) struct Fields<'a> {
    pub(crate) obj: &'a Object,
    pub(crate) what: &'static str,
}

impl<'a> Fields<'a> {
    pub(crate) fn new(obj: &'a Object, what: &'static str) -> Self {
        Self { obj, what }
    }

    fn err(&self, key: &str, why: &str) -> TrustError {
        TrustError::InvalidRecord(format!("{} member `{key}`: {why}", self.what))
    }

    /// Present and not `null`.
    pub(crate) fn get(&self, key: &str) -> Option<&'a Value> {
        self.obj.get(key).filter(|v| !v.is_null())
    }

    pub(crate) fn req_str(&self, key: &str) -> Result<&'a str> {
        match self.get(key) {
            Some(v) => v.as_str().ok_or_else(|| self.err(key, "not a string")),
            None => Err(self.err(key, "missing")),
        }
    }

    pub(crate) fn opt_str(&self, key: &str) -> Result<Option<&'a str>> {
        self.get(key)
            .map(|v| v.as_str().ok_or_else(|| self.err(key, "not a string")))
            .transpose()
    }

    pub(crate) fn req_time(&self, key: &str) -> Result<UnixMillis> {
        let s = self.req_str(key)?;
        UnixMillis::parse(s).map_err(|e| self.err(key, &e.to_string()))
    }

    pub(crate) fn opt_time(&self, key: &str) -> Result<Option<UnixMillis>> {
        self.opt_str(key)?
            .map(|s| UnixMillis::parse(s).map_err(|e| self.err(key, &e.to_string())))
            .transpose()
    }

    pub(crate) fn opt_object(&self, key: &str) -> Result<Option<&'a Object>> {
        self.get(key)
            .map(|v| v.as_object().ok_or_else(|| self.err(key, "not an object")))
            .transpose()
    }

    pub(crate) fn opt_array(&self, key: &str) -> Result<Option<&'a [Value]>> {
        self.get(key)
            .map(|v| v.as_array().ok_or_else(|| self.err(key, "not an array")))
            .transpose()
    }

    pub(crate) fn opt_u64(&self, key: &str) -> Result<Option<u64>> {
        self.get(key)
            .map(|v| match v.as_f64() {
                Some(n) if n >= 0.0 && n.fract() == 0.0 && n <= 9_007_199_254_740_991.0 => {
                    Ok(n as u64)
                }
                _ => Err(self.err(key, "not a non-negative integer")),
            })
            .transpose()
    }

    pub(crate) fn opt_bool(&self, key: &str) -> Result<Option<bool>> {
        self.get(key)
            .map(|v| v.as_bool().ok_or_else(|| self.err(key, "not a boolean")))
            .transpose()
    }

    /// The members not in `known`, in their order.
    pub(crate) fn extra(&self, known: &[&str]) -> Object {
        self.obj
            .iter()
            .filter(|(k, _)| !k.as_str().is_some_and(|k| known.contains(&k)))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

pub(crate) fn time(t: UnixMillis) -> Value {
    Value::from(t.to_datetime_string())
}

pub(crate) fn num(n: u64) -> Value {
    Value::Number(n as f64)
}

/// `JSON.stringify(value, null, 2)`, the layout btps-node writes its JSON files in.
pub(crate) fn to_pretty(value: &Value) -> String {
    btps_types::json::to_js_string_pretty(value)
}
