//! The layered parameter values a task sees, with DolphinScheduler's priority:
//! startup > local > upstream (OUT parameters of upstream tasks) > global.
//!
//! Values are stored raw; references inside them (`${other}`, `$[yyyyMMdd-1]`) are expanded
//! only when a text is substituted, so that a value may refer to parameters of any layer.

use std::collections::BTreeMap;
use std::fmt;

/// Where a parameter value came from, in increasing priority.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Layer {
    /// The workflow definition's global parameters.
    Global,
    /// OUT parameters passed on by upstream tasks.
    Upstream,
    /// The task definition's local parameters.
    Local,
    /// Parameters given when the run was started; they override everything.
    Startup,
}

impl Layer {
    /// Highest priority first, the order lookups try the layers in.
    pub const BY_PRIORITY: [Layer; 4] =
        [Layer::Startup, Layer::Local, Layer::Upstream, Layer::Global];
}

impl fmt::Display for Layer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Layer::Global => "global",
            Layer::Upstream => "upstream",
            Layer::Local => "local",
            Layer::Startup => "startup",
        })
    }
}

/// Layered parameter values. Within one layer a later value for the same name replaces an
/// earlier one, so when several upstream tasks emit the same OUT parameter the caller decides
/// which wins by the order it passes them in.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ParamScope {
    global: BTreeMap<String, String>,
    upstream: BTreeMap<String, String>,
    local: BTreeMap<String, String>,
    startup: BTreeMap<String, String>,
}

impl ParamScope {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with_global<K, V>(self, values: impl IntoIterator<Item = (K, V)>) -> Self
    where
        K: Into<String>,
        V: Into<String>,
    {
        self.with_layer(Layer::Global, values)
    }

    pub fn with_upstream<K, V>(self, values: impl IntoIterator<Item = (K, V)>) -> Self
    where
        K: Into<String>,
        V: Into<String>,
    {
        self.with_layer(Layer::Upstream, values)
    }

    pub fn with_local<K, V>(self, values: impl IntoIterator<Item = (K, V)>) -> Self
    where
        K: Into<String>,
        V: Into<String>,
    {
        self.with_layer(Layer::Local, values)
    }

    pub fn with_startup<K, V>(self, values: impl IntoIterator<Item = (K, V)>) -> Self
    where
        K: Into<String>,
        V: Into<String>,
    {
        self.with_layer(Layer::Startup, values)
    }

    /// Adds `values` to `layer`, replacing values of the same name already in that layer.
    pub fn with_layer<K, V>(
        mut self,
        layer: Layer,
        values: impl IntoIterator<Item = (K, V)>,
    ) -> Self
    where
        K: Into<String>,
        V: Into<String>,
    {
        self.layer_mut(layer)
            .extend(values.into_iter().map(|(k, v)| (k.into(), v.into())));
        self
    }

    /// Sets one value in `layer`.
    pub fn insert(&mut self, layer: Layer, name: impl Into<String>, value: impl Into<String>) {
        self.layer_mut(layer).insert(name.into(), value.into());
    }

    /// The raw (unexpanded) value of `name` from the highest-priority layer that has it.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.lookup(name).map(|(_, value)| value)
    }

    /// Like [`ParamScope::get`], also saying which layer the value came from.
    pub fn lookup(&self, name: &str) -> Option<(Layer, &str)> {
        Layer::BY_PRIORITY
            .into_iter()
            .find_map(|layer| self.layer(layer).get(name).map(|v| (layer, v.as_str())))
    }

    /// The values of one layer alone.
    pub fn layer(&self, layer: Layer) -> &BTreeMap<String, String> {
        match layer {
            Layer::Global => &self.global,
            Layer::Upstream => &self.upstream,
            Layer::Local => &self.local,
            Layer::Startup => &self.startup,
        }
    }

    fn layer_mut(&mut self, layer: Layer) -> &mut BTreeMap<String, String> {
        match layer {
            Layer::Global => &mut self.global,
            Layer::Upstream => &mut self.upstream,
            Layer::Local => &mut self.local,
            Layer::Startup => &mut self.startup,
        }
    }

    /// Every name defined in any layer, sorted and without duplicates.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        let mut names: Vec<&str> = Layer::BY_PRIORITY
            .into_iter()
            .flat_map(|layer| self.layer(layer).keys().map(String::as_str))
            .collect();
        names.sort_unstable();
        names.dedup();
        names.into_iter()
    }

    pub fn is_empty(&self) -> bool {
        Layer::BY_PRIORITY
            .into_iter()
            .all(|layer| self.layer(layer).is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn four_layers() -> ParamScope {
        ParamScope::new()
            .with_global([
                ("a", "global"),
                ("b", "global"),
                ("c", "global"),
                ("d", "global"),
            ])
            .with_upstream([("b", "upstream"), ("c", "upstream"), ("d", "upstream")])
            .with_local([("c", "local"), ("d", "local")])
            .with_startup([("d", "startup")])
    }

    #[test]
    fn highest_priority_layer_wins() {
        let scope = four_layers();
        assert_eq!(scope.get("a"), Some("global"));
        assert_eq!(scope.get("b"), Some("upstream"));
        assert_eq!(scope.get("c"), Some("local"));
        assert_eq!(scope.get("d"), Some("startup"));
        assert_eq!(scope.get("e"), None);
        assert_eq!(scope.lookup("c"), Some((Layer::Local, "local")));
        assert_eq!(scope.lookup("b"), Some((Layer::Upstream, "upstream")));
    }

    #[test]
    fn priority_does_not_depend_on_build_order() {
        let scope = ParamScope::new()
            .with_startup([("x", "startup")])
            .with_local([("x", "local"), ("y", "local")])
            .with_upstream([("y", "upstream"), ("z", "upstream")])
            .with_global([("z", "global")]);
        assert_eq!(scope.get("x"), Some("startup"));
        assert_eq!(scope.get("y"), Some("local"));
        assert_eq!(scope.get("z"), Some("upstream"));
    }

    #[test]
    fn later_values_replace_earlier_ones_within_a_layer() {
        let mut scope = ParamScope::new()
            .with_upstream([("out", "first task")])
            .with_upstream([("out", "second task")]);
        assert_eq!(scope.get("out"), Some("second task"));
        scope.insert(Layer::Upstream, "out", "third");
        assert_eq!(scope.get("out"), Some("third"));
        assert_eq!(scope.layer(Layer::Upstream).len(), 1);
    }

    #[test]
    fn accepts_owned_strings() {
        let owned = vec![("k".to_string(), "v".to_string())];
        let scope = ParamScope::new().with_global(owned);
        assert_eq!(scope.get("k"), Some("v"));
        assert!(!scope.is_empty());
        assert!(ParamScope::new().is_empty());
    }

    #[test]
    fn names_are_sorted_and_unique() {
        let scope = four_layers();
        let names: Vec<&str> = scope.names().collect();
        assert_eq!(names, ["a", "b", "c", "d"]);
    }

    #[test]
    fn layers_display_in_lowercase() {
        let shown: Vec<String> = Layer::BY_PRIORITY.iter().map(Layer::to_string).collect();
        assert_eq!(shown, ["startup", "local", "upstream", "global"]);
    }
}
