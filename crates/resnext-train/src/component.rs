//! Config sections whose `name` chooses a component with keys of its own (`[optim]`: adam, adamw,
//! sgd; `[schedule]`: constant, step, cosine), as burn's optimiser configs: each component's
//! struct has its own defaults and `validate`, the section's TOML stays flat as users write it,
//! and a key that belongs to another component is an error naming that component.
//!
//! A section's struct derives its (de)serialisation with `#[serde(remote = "Self")]`: the
//! derived `serialize`/`deserialize` (inherent functions, not the traits) read and write the keys
//! every component shares, with the component (`rule`) skipped; the traits, written by hand
//! with [`Components`], add `name` and the component's own keys.
//!
//! Here too are the checks that the sections' and the components' `validate` share: an error
//! names the `section.key`.

use crate::error::TrainError;
use serde::de::{DeserializeOwned, Error as _};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The components of a section: the section's name, and each component's name with its own
/// keys, the first being the default (when `name` is absent).
pub(crate) struct Components {
    pub section: &'static str,
    pub list: &'static [(&'static str, &'static [&'static str])],
}

impl Components {
    /// The own keys of the component `name`.
    fn keys_of(&self, name: &str) -> Option<&'static [&'static str]> {
        self.list.iter().find(|(n, _)| *n == name).map(|(_, k)| *k)
    }

    /// The first component that lists `key` as its own.
    fn owner(&self, key: &str) -> Option<&'static str> {
        let (name, _) = self.list.iter().find(|(_, keys)| keys.contains(&key))?;
        Some(name)
    }

    /// Splits a section into the component's name, its own keys, and the keys every component
    /// shares.
    fn split(&self, mut table: toml::Table) -> Result<(String, toml::Table, toml::Table), String> {
        let section = self.section;
        let name = match table.remove("name") {
            None => self.list[0].0.to_string(),
            Some(toml::Value::String(s)) => s,
            Some(other) => return Err(format!("`{section}.name` must be a string, got {other}")),
        };
        let Some(keys) = self.keys_of(&name) else {
            let names: Vec<String> = self.list.iter().map(|(n, _)| format!("`{n}`")).collect();
            return Err(format!(
                "unknown variant `{name}` of `{section}.name`, expected one of {}",
                names.join(", ")
            ));
        };
        let own = keys
            .iter()
            .filter_map(|k| Some((k.to_string(), table.remove(*k)?)))
            .collect();
        if let Some((k, other)) = table
            .keys()
            .find_map(|k| self.owner(k).map(|other| (k, other)))
        {
            return Err(format!(
                "`{section}.{k}` is a setting of {section}.name = \"{other}\", not of \"{name}\""
            ));
        }
        Ok((name, own, table))
    }

    /// Removes from a section the keys of components other than the one it names: what a run's
    /// `config.toml` held before each component owned its keys (every key, the unused ones at
    /// their defaults, where they had no effect).
    pub fn drop_foreign_keys(&self, table: &mut toml::Table) {
        let name = table.get("name").and_then(|v| v.as_str());
        let own = self.keys_of(name.unwrap_or(self.list[0].0));
        let own = own.unwrap_or_default();
        table.retain(|k, _| own.contains(&k) || self.owner(k).is_none());
    }

    /// Deserialises a section: `rule` makes the component from its name and own keys, `shared`
    /// (the section's remote derive) the section from the keys every component shares.
    pub fn deserialize<'de, D: Deserializer<'de>, T, R>(
        &self,
        d: D,
        rule: impl FnOnce(&str, toml::Table) -> Result<R, String>,
        shared: impl FnOnce(toml::Value) -> Result<T, toml::de::Error>,
    ) -> Result<(R, T), D::Error> {
        let table = toml::Table::deserialize(d)?;
        let (name, own, rest) = self.split(table).map_err(D::Error::custom)?;
        let rule = rule(&name, own).map_err(D::Error::custom)?;
        let shared = shared(toml::Value::Table(rest)).map_err(|e| D::Error::custom(e.message()))?;
        Ok((rule, shared))
    }
}

/// Deserialises a table into a component's struct.
pub(crate) fn parse<T: DeserializeOwned>(table: toml::Table) -> Result<T, String> {
    toml::Value::Table(table)
        .try_into()
        .map_err(|e: toml::de::Error| e.message().to_string())
}

/// Serialises the flat section: `name`, then the shared keys, then the component's own.
pub(crate) fn serialize_flat<S: Serializer>(
    s: S,
    name: &str,
    shared: impl Serialize,
    own: impl Serialize,
) -> Result<S::Ok, S::Error> {
    let mut t = toml::Table::new();
    t.insert("name".into(), name.into());
    for part in [toml::Table::try_from(shared), toml::Table::try_from(own)] {
        t.extend(part.unwrap_or_default());
    }
    t.serialize(s)
}

/// `Err` naming `key` with `reason` unless `ok`.
pub(crate) fn check(ok: bool, key: &'static str, reason: &str) -> Result<(), TrainError> {
    if ok {
        Ok(())
    } else {
        Err(TrainError::InvalidValue {
            key,
            reason: reason.to_string(),
        })
    }
}

/// Finite and > 0 (`!(v > 0)` also rejects NaN).
pub(crate) fn positive(v: f64, key: &'static str) -> Result<(), TrainError> {
    check(
        v.is_finite() && v > 0.0,
        key,
        &format!("must be a finite number > 0, got {v}"),
    )
}

/// In [0, 1).
pub(crate) fn below_one(v: f64, key: &'static str) -> Result<(), TrainError> {
    check(
        (0.0..1.0).contains(&v),
        key,
        &format!("must be in [0, 1), got {v}"),
    )
}
