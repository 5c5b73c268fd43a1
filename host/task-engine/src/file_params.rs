//! FILE parameters at the work dir's edge: an upstream file written in before a task
//! starts, a finished task's OUT file read out. The work dir is the task's own, and its
//! processes could have left anything there (a symlink to the host's files, a huge
//! file), so a read follows no symlink, stays inside the work dir and is bounded.

use std::io::Read as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Component, Path};

use shoal_model::file_param::{decode, plain_file_name};

/// Write each (name, value) as the file `name` in `work_dir`.
pub fn write_in_files(work_dir: &Path, files: &[(String, String)]) -> Result<(), String> {
    for (name, value) in files {
        if !plain_file_name(name) {
            return Err(format!(
                "IN FILE parameter `{name}`: its name must be a plain file name"
            ));
        }
        let bytes = decode(value).map_err(|e| format!("IN FILE parameter `{name}`: {e}"))?;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            // Readable by the tenant the task's processes run as, like the scripts a
            // plugin writes; the 0700 work dir keeps everyone else out.
            .mode(0o644)
            .open(work_dir.join(name))
            .map_err(|e| {
                format!("IN FILE parameter `{name}`: cannot create it in the work dir: {e}")
            })?;
        std::io::Write::write_all(&mut f, &bytes)
            .map_err(|e| format!("IN FILE parameter `{name}`: cannot write it: {e}"))?;
    }
    Ok(())
}

/// The bytes of `path` (relative to `work_dir`), at most `limit` of them.
pub fn read_out_file(work_dir: &Path, path: &str, limit: usize) -> Result<Vec<u8>, String> {
    let rel = Path::new(path.trim());
    if rel.as_os_str().is_empty()
        || !rel
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return Err(format!(
            "`{path}` must be a path inside the task's work dir (no `..`, not absolute)"
        ));
    }
    let full = work_dir.join(rel);
    // Directories on the way must not lead out of the work dir through a symlink.
    let root = work_dir
        .canonicalize()
        .map_err(|e| format!("the work dir is gone: {e}"))?;
    if let Some(parent) = full.parent() {
        let real = parent
            .canonicalize()
            .map_err(|_| format!("`{path}` does not exist in the work dir"))?;
        if !real.starts_with(&root) {
            return Err(format!("`{path}` leads out of the work dir"));
        }
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(&full)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => {
                format!("`{path}` is a symlink; a FILE parameter passes a regular file")
            }
            _ if e.kind() == std::io::ErrorKind::NotFound => {
                format!("`{path}` does not exist in the work dir")
            }
            _ => format!("cannot open `{path}`: {e}"),
        })?;
    let meta = file.metadata().map_err(|e| format!("`{path}`: {e}"))?;
    if !meta.is_file() {
        return Err(format!(
            "`{path}` is not a regular file (pack a directory first, e.g. `tar -czf out.tgz DIR`)"
        ));
    }
    let mut bytes = Vec::new();
    file.take(limit as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read `{path}`: {e}"))?;
    // The encoded value must fit the OUT parameter budget too; the raw size is the
    // first check, the budget check after encoding the final one.
    if bytes.len() > limit {
        return Err(format!(
            "`{path}` is larger than the {limit} bytes OUT parameters may hold (task-limits.out-param-bytes)"
        ));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_files_stay_inside_the_work_dir() {
        let dir = tempfile::tempdir().unwrap();
        let work = dir.path().join("work");
        std::fs::create_dir_all(work.join("sub")).unwrap();
        std::fs::write(work.join("sub/report.txt"), b"rows: 3").unwrap();
        std::fs::write(dir.path().join("secret.key"), b"host secret").unwrap();
        assert_eq!(
            read_out_file(&work, "sub/report.txt", 100).unwrap(),
            b"rows: 3"
        );
        assert!(
            read_out_file(&work, "../secret.key", 100)
                .unwrap_err()
                .contains("inside")
        );
        assert!(
            read_out_file(&work, "/etc/hostname", 100)
                .unwrap_err()
                .contains("inside")
        );
        std::os::unix::fs::symlink(dir.path().join("secret.key"), work.join("link")).unwrap();
        assert!(
            read_out_file(&work, "link", 100)
                .unwrap_err()
                .contains("symlink")
        );
        std::os::unix::fs::symlink(dir.path(), work.join("up")).unwrap();
        assert!(
            read_out_file(&work, "up/secret.key", 100)
                .unwrap_err()
                .contains("out of")
        );
        assert!(
            read_out_file(&work, "sub", 100)
                .unwrap_err()
                .contains("not a regular file")
        );
        assert!(
            read_out_file(&work, "missing.txt", 100)
                .unwrap_err()
                .contains("does not exist")
        );
        assert!(
            read_out_file(&work, "sub/report.txt", 3)
                .unwrap_err()
                .contains("larger")
        );
    }

    #[test]
    fn in_files_are_written_under_their_names() {
        let dir = tempfile::tempdir().unwrap();
        let value = shoal_model::file_param::encode("r.txt", b"hello");
        write_in_files(dir.path(), &[("report".into(), value.clone())]).unwrap();
        assert_eq!(std::fs::read(dir.path().join("report")).unwrap(), b"hello");
        assert!(write_in_files(dir.path(), &[("../x".into(), value)]).is_err());
        assert!(write_in_files(dir.path(), &[("y".into(), "plain".into())]).is_err());
    }
}
