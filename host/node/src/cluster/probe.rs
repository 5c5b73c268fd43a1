//! What a node reports of its machine in each heartbeat: CPU and memory pressure, read
//! from `/proc` (0 where that cannot be read).

/// The one-minute load average per core, capped at 1.
pub(crate) fn cpu_load() -> f64 {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1) as f64;
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<f64>().ok())
        .map(|load| (load / cores).clamp(0.0, 1.0))
        .unwrap_or(0.0)
}

/// The fraction of memory in use (1 − available / total).
pub(crate) fn memory_used() -> f64 {
    let Ok(text) = std::fs::read_to_string("/proc/meminfo") else {
        return 0.0;
    };
    let field = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
    };
    match (field("MemTotal:"), field("MemAvailable:")) {
        (Some(total), Some(available)) if total > 0.0 => (1.0 - available / total).clamp(0.0, 1.0),
        _ => 0.0,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn figures_are_fractions() {
        for v in [super::cpu_load(), super::memory_used()] {
            assert!((0.0..=1.0).contains(&v), "{v}");
        }
    }
}
