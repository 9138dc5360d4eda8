//! Config sections whose `name` chooses a component with keys of its own (`[optim]`: adam, adamw,
//! sgd; `[schedule]`: constant, step, cosine), as burn's optimiser configs: each component's
//! struct has its own defaults and `validate`, the section's TOML stays flat as users write it,
//! and a key that belongs to another component is an error naming that component.

use serde::de::DeserializeOwned;
use serde::Serialize;

/// A section split by its `name`: the component, its own keys, and the keys every component
/// shares.
pub(crate) struct Tagged {
    pub name: String,
    pub own: toml::Table,
    pub shared: toml::Table,
}

/// Splits `table` (the section `section`) by `name` (`default` when absent). `components` lists
/// each component's name and its own keys.
pub(crate) fn split(
    section: &str,
    mut table: toml::Table,
    default: &str,
    components: &[(&str, &[&str])],
) -> Result<Tagged, String> {
    let name = match table.remove("name") {
        None => default.to_string(),
        Some(toml::Value::String(s)) => s,
        Some(other) => return Err(format!("`{section}.name` must be a string, got {other}")),
    };
    let Some((_, keys)) = components.iter().find(|(n, _)| *n == name) else {
        let names: Vec<String> = components.iter().map(|(n, _)| format!("`{n}`")).collect();
        return Err(format!(
            "unknown variant `{name}` of `{section}.name`, expected one of {}",
            names.join(", ")
        ));
    };
    let mut own = toml::Table::new();
    for k in keys.iter() {
        if let Some(v) = table.remove(*k) {
            own.insert(k.to_string(), v);
        }
    }
    if let Some((k, other)) = table.keys().find_map(|k| {
        components
            .iter()
            .find(|(_, ks)| ks.contains(&k.as_str()))
            .map(|(other, _)| (k, other))
    }) {
        return Err(format!(
            "`{section}.{k}` is a setting of {section}.name = \"{other}\", not of \"{name}\""
        ));
    }
    Ok(Tagged {
        name,
        own,
        shared: table,
    })
}

/// Removes from a section the keys of components other than the one it names: what a run's
/// `config.toml` held before each component owned its keys (every key, the unused ones at their
/// defaults, where they had no effect).
pub(crate) fn drop_foreign_keys(
    table: &mut toml::Table,
    default: &str,
    components: &[(&str, &[&str])],
) {
    let name = table
        .get("name")
        .and_then(|v| v.as_str())
        .unwrap_or(default)
        .to_string();
    let own: &[&str] = components
        .iter()
        .find(|(n, _)| *n == name)
        .map_or(&[], |(_, k)| k);
    table
        .retain(|k: &str, _| own.contains(&k) || !components.iter().any(|(_, ks)| ks.contains(&k)));
}

/// Deserialises a table into a component's (or the shared keys') struct.
pub(crate) fn parse<T: DeserializeOwned>(table: toml::Table) -> Result<T, String> {
    toml::Value::Table(table)
        .try_into()
        .map_err(|e: toml::de::Error| e.message().to_string())
}

/// The flat section: `name`, then the shared keys, then the component's own.
pub(crate) fn join(name: &str, shared: &impl Serialize, own: &impl Serialize) -> toml::Table {
    let mut t = toml::Table::new();
    t.insert("name".into(), name.into());
    for part in [toml::Table::try_from(shared), toml::Table::try_from(own)] {
        t.extend(part.unwrap_or_default());
    }
    t
}

/// A component without keys of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoSettings {}
