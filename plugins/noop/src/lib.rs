//! `noop`: the smallest task type. It succeeds at once, optionally emitting the OUT
//! parameters given in `set`. Used by benchmarks (it measures pure host overhead) and
//! by tests of parameter passing.

use std::collections::BTreeMap;

use shoal_sdk::prelude::*;

#[derive(Deserialize, JsonSchema)]
pub struct Params {
    /// OUT parameters to emit, key → value.
    #[serde(default)]
    pub set: BTreeMap<String, String>,
}

pub struct Noop;

impl TaskType for Noop {
    type Params = Params;
    const NAME: &'static str = "noop";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str = "Does nothing and succeeds; for benchmarks and tests";

    fn start(ctx: &mut TaskContext, params: Params) -> Result<Start, Error> {
        for (k, v) in params.set {
            ctx.set_out_param(k, v);
        }
        Ok(Start::success(""))
    }
}

export_task!(Noop);
