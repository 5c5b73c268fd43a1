//! The built-in task types (`plugins/*`), compiled to `wasm32-wasip2` by this crate's
//! build script and embedded, so a built `shoal` binary is all a user needs.

include!(concat!(env!("OUT_DIR"), "/builtins.rs"));

/// The embedded (manifest, component) of the plugin whose manifest id is `id`.
pub fn find(id: &str) -> Option<(&'static str, &'static [u8])> {
    let needle = format!("id = \"{id}\"");
    BUILTIN_PLUGINS
        .iter()
        .find(|(manifest, _)| manifest.lines().any(|l| l.trim() == needle))
        .copied()
}
