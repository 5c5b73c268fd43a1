//! `shoal validate FILE`: every problem in a workflow definition, checked against the
//! plugins that would run it.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

pub use shoal_api::catalog::RegistryCatalog;
use shoal_workflow::Diagnostic;

use crate::app::{DataDir, load_policy, open_registry};

pub async fn run(
    files: Vec<PathBuf>,
    data: &DataDir,
    policy: Option<&Path>,
) -> anyhow::Result<ExitCode> {
    let catalog = RegistryCatalog::new(open_registry(data, load_policy(data, policy)?)?);
    let mut failed = false;
    for file in files {
        let problems: Vec<Diagnostic> = match shoal_workflow::load_file(&file) {
            Ok(loaded) => {
                for w in &loaded.warnings {
                    println!("warning: {w}");
                }
                let problems = shoal_workflow::validate(&loaded, &catalog).await;
                if problems.is_empty() {
                    println!(
                        "{}: ok (workflow `{}`, {} tasks)",
                        file.display(),
                        loaded.workflow.name,
                        loaded.workflow.tasks.len()
                    );
                }
                problems
            }
            Err(diagnostics) => diagnostics.0,
        };
        for p in &problems {
            println!("{p}");
        }
        failed |= !problems.is_empty();
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
