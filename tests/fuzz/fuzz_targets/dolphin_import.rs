//! DolphinScheduler export JSON on arbitrary text: the converter returns an import or
//! an error, never panics, and every document it returns reads back through the
//! loader's upload path (which may refuse it, but must not panic either).
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use shoal_dolphin::{Options, convert};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for partial in [false, true] {
        let options = Options {
            partial,
            ..Options::default()
        };
        if let Ok(import) = convert(text, &options) {
            for wf in &import.workflows {
                let _ = shoal_workflow::load_uploaded(&wf.yaml, Path::new("import.yaml"));
            }
        }
    }
});
