//! Host-side bindings for the `shoal:task` world, generated from `wit/v0.1`.
//!
//! Imports are async (a process wait or a log write may await) and trappable (a host
//! error ends the call instead of being smuggled into the guest). Exports are called
//! with the `*_async` functions so epoch ticks can yield to the executor.

wasmtime::component::bindgen!({
    path: "../../wit/v0.1",
    world: "task-plugin",
    imports: { default: async | trappable },
    exports: { default: async },
    with: {
        "shoal:task/process.child": crate::capabilities::process::ChildProcess,
    },
});

pub use shoal::task::{context, log, process, sql, types, workflow};
