//! Host-side bindings for the `shoal:task` worlds, generated from `wit/v0.1`.
//!
//! Imports are async (a process wait or a log write may await) and trappable (a host
//! error ends the call instead of being smuggled into the guest). Exports are called
//! with the `*_async` functions so epoch ticks can yield to the executor.
//!
//! The plugin export and the optional `controls` export (0.1.2) are bound from two
//! worlds (`wit/v0.1/host.wit`): a component without `controls` must still load.

wasmtime::component::bindgen!({
    path: "../../wit/v0.1",
    world: "host-plugin",
    imports: { default: async | trappable },
    exports: { default: async },
    with: {
        "shoal:task/process.child": crate::capabilities::process::ChildProcess,
    },
});

pub use shoal::task::{context, log, process, sql, types, workflow};

/// The optional `shoal:task/controls` export.
pub mod controls {
    wasmtime::component::bindgen!({
        path: "../../wit/v0.1",
        world: "host-controls",
        exports: { default: async },
    });
}
