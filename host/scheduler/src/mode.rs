//! What happens when a run of a definition starts while another is unfinished.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// DolphinScheduler's execution types.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RunMode {
    #[default]
    Parallel,
    SerialWait,
    SerialDiscard,
    SerialPriority,
}

impl RunMode {
    pub const ALL: [RunMode; 4] = [
        Self::Parallel,
        Self::SerialWait,
        Self::SerialDiscard,
        Self::SerialPriority,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Parallel => "parallel",
            Self::SerialWait => "serial-wait",
            Self::SerialDiscard => "serial-discard",
            Self::SerialPriority => "serial-priority",
        }
    }
}

impl fmt::Display for RunMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RunMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let norm = s.trim().to_ascii_lowercase().replace('_', "-");
        Self::ALL
            .into_iter()
            .find(|m| m.as_str() == norm)
            .ok_or_else(|| {
                format!(
                    "unknown run mode `{s}`; expected one of parallel, serial-wait, serial-discard, serial-priority"
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_spellings() {
        assert_eq!("SERIAL_WAIT".parse::<RunMode>(), Ok(RunMode::SerialWait));
        assert_eq!(
            "serial-priority".parse::<RunMode>(),
            Ok(RunMode::SerialPriority)
        );
        assert!(
            "serial"
                .parse::<RunMode>()
                .unwrap_err()
                .contains("serial-wait")
        );
    }
}
