//! Confinement of the processes a plugin starts: bubblewrap namespaces, the tenant's OS
//! user, resource limits and a pids cgroup per task.
//!
//! The host never runs a plugin's program as itself. Under bubblewrap the program sees
//! the system's read-only directories (`/usr`, `/bin`, `/lib*`, `/etc`, ...), its own work
//! dir at `/work` (read-write), a private `/tmp`, `/dev` and `/proc` — and nothing else:
//! the data dir (store, secret key, compile cache, plugin store, logs, other tasks' work
//! dirs) does not exist there. It is PID 1's child in a PID namespace of its own, so a
//! `setsid` or double-forked child dies with the task, and `--die-with-parent` ends the
//! sandbox when the host goes. When the host runs as root the program runs as the
//! tenant's OS user (`setpriv` inside the sandbox, all capabilities dropped); otherwise it
//! keeps the host's user and bubblewrap's user namespace.

use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use shoal_model::sandbox::valid_tenant_name;
use shoal_model::{ProcessLimits, SandboxKind, SandboxPolicy};

/// Where the work dir appears inside the sandbox (the same path the guest sees).
pub const SANDBOX_WORK_DIR: &str = "/work";

/// System directories shown read-only inside the sandbox, where they exist.
const SYSTEM_DIRS: [&str; 8] = [
    "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc",
];

/// An OS user task processes run as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TenantUser {
    pub uid: u32,
    pub gid: u32,
}

/// Whether the host process runs as root (and so must drop to a tenant).
pub fn host_is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Look a user up by name.
pub fn lookup_user(name: &str) -> Option<TenantUser> {
    let cname = CString::new(name).ok()?;
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut buf = vec![0u8; 16 * 1024];
    let mut out: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call; `buf` outlives it.
    let rc = unsafe {
        libc::getpwnam_r(
            cname.as_ptr(),
            &mut pwd,
            buf.as_mut_ptr().cast(),
            buf.len(),
            &mut out,
        )
    };
    (rc == 0 && !out.is_null()).then_some(TenantUser {
        uid: pwd.pw_uid,
        gid: pwd.pw_gid,
    })
}

/// Make sure the tenant user exists, creating it (a system user without a home or a
/// login shell) when the host is root. Serialised: concurrent tasks must not race
/// `useradd`.
pub fn ensure_tenant(name: &str) -> Result<TenantUser, String> {
    static CREATING: Mutex<()> = Mutex::new(());
    if !valid_tenant_name(name) {
        return Err(format!("tenant `{name}` is not a valid OS user name"));
    }
    if let Some(user) = lookup_user(name) {
        return Ok(user);
    }
    let _guard = CREATING.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(user) = lookup_user(name) {
        return Ok(user);
    }
    if !host_is_root() {
        return Err(format!("tenant user `{name}` does not exist on this host"));
    }
    let status = std::process::Command::new("useradd")
        .args([
            "--system",
            "--user-group",
            "--no-create-home",
            "--shell",
            "/usr/sbin/nologin",
            name,
        ])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .output()
        .map_err(|e| format!("cannot create tenant user `{name}` (useradd: {e})"))?;
    if !status.status.success() {
        return Err(format!(
            "cannot create tenant user `{name}`: useradd {}: {}",
            status.status,
            String::from_utf8_lossy(&status.stderr).trim()
        ));
    }
    lookup_user(name).ok_or_else(|| format!("tenant user `{name}` was created but cannot be found"))
}

/// Whether bubblewrap is installed here.
pub fn bubblewrap_available() -> bool {
    which("bwrap").is_some()
}

/// Find a program on the host's `PATH`.
fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into());
    std::env::split_paths(&path)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

/// A pids cgroup holding one task's processes: its `pids.max` bounds a fork bomb to the
/// task, and killing its members reaches every process the task left behind.
pub struct PidsCgroup {
    dir: PathBuf,
    procs: OwnedFd,
}

impl PidsCgroup {
    /// Create a cgroup for one spawn under the host's pids hierarchy, or `None` where the
    /// host may not (not root, no pids controller).
    fn create(max: u64) -> Option<Self> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let root = pids_root()?;
        let parent = root.join("shoal");
        std::fs::create_dir_all(&parent).ok()?;
        let name = format!(
            "{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let dir = parent.join(name);
        std::fs::create_dir(&dir).ok()?;
        let made = (|| {
            std::fs::write(dir.join("pids.max"), max.to_string()).ok()?;
            let file = std::fs::OpenOptions::new()
                .write(true)
                .open(dir.join("cgroup.procs"))
                .ok()?;
            Some(OwnedFd::from(file))
        })();
        match made {
            Some(procs) => Some(Self { dir, procs }),
            None => {
                let _ = std::fs::remove_dir(&dir);
                None
            }
        }
    }

    /// SIGKILL every member, then remove the cgroup once it is empty (in the background:
    /// the killed processes take a moment to be reaped).
    pub fn kill_and_remove(&self) {
        self.kill_all();
        let dir = self.dir.clone();
        std::thread::spawn(move || {
            for _ in 0..200 {
                if std::fs::remove_dir(&dir).is_ok() {
                    return;
                }
                kill_members(&dir);
                std::thread::sleep(std::time::Duration::from_millis(25));
            }
        });
    }

    fn kill_all(&self) {
        kill_members(&self.dir);
    }

    /// The number of processes in the cgroup now.
    pub fn members(&self) -> usize {
        std::fs::read_to_string(self.dir.join("cgroup.procs"))
            .map(|t| t.lines().count())
            .unwrap_or(0)
    }
}

fn kill_members(dir: &Path) {
    if let Ok(text) = std::fs::read_to_string(dir.join("cgroup.procs")) {
        for pid in text.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
            // SAFETY: kill has no memory-safety preconditions.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
    }
}

/// The pids hierarchy this host may create cgroups in: cgroup v1's `pids` controller, or
/// a cgroup v2 root that offers `pids`.
fn pids_root() -> Option<PathBuf> {
    static ROOT: std::sync::OnceLock<Option<PathBuf>> = std::sync::OnceLock::new();
    ROOT.get_or_init(|| {
        if !host_is_root() {
            return None;
        }
        let v1 = Path::new("/sys/fs/cgroup/pids");
        if v1.join("cgroup.procs").is_file() {
            return Some(v1.to_path_buf());
        }
        let v2 = Path::new("/sys/fs/cgroup");
        let controllers = std::fs::read_to_string(v2.join("cgroup.controllers")).ok()?;
        if !controllers.split_whitespace().any(|c| c == "pids") {
            return None;
        }
        // Children of the v2 root get `pids.max` only once the root delegates it.
        std::fs::write(v2.join("cgroup.subtree_control"), "+pids").ok()?;
        let _ = std::fs::create_dir_all(v2.join("shoal"));
        let _ = std::fs::write(v2.join("shoal/cgroup.subtree_control"), "+pids");
        Some(v2.to_path_buf())
    })
    .clone()
}

/// What an operator should hear at start-up about how task processes will be confined:
/// no sandbox at all, a missing `bwrap`, a tenant that cannot be created. Creates the
/// default tenant when the host is root, so the first task does not have to.
pub fn preflight(policy: &SandboxPolicy) -> Vec<String> {
    let mut warnings = Vec::new();
    if policy.kind == SandboxKind::None {
        warnings.push(
            "the policy says `sandbox = \"none\"`: task processes run without a sandbox, as this server's own OS user, and can read and change whatever it can (the data dir included)".to_owned(),
        );
        return warnings;
    }
    if which("bwrap").is_none() {
        warnings.push(
            "bubblewrap (`bwrap`) is not installed: every task that starts a process will fail until it is (Debian: apt-get install bubblewrap)".to_owned(),
        );
    }
    if !host_is_root() {
        warnings.push(
            "not running as root: task processes keep this server's OS user (inside the sandbox); run as root to give each project its own tenant user".to_owned(),
        );
    } else if let Err(e) = ensure_tenant(&policy.default_tenant) {
        warnings.push(format!("{e}: tasks that start processes will fail"));
    }
    warnings
}

/// One process to start, confined.
pub struct Confined {
    pub command: tokio::process::Command,
    pub cgroup: Option<PidsCgroup>,
    /// What the task log says about the confinement.
    pub note: String,
}

/// Build the command that runs `argv` for a task: in the sandbox the policy asks for,
/// as the tenant when the host is root, with the policy's limits. `cwd` is relative to
/// the work dir (already checked not to escape it).
pub fn confine(
    policy: &SandboxPolicy,
    tenant: Option<&str>,
    work_dir: &Path,
    cwd: &Path,
    argv: &[String],
) -> Result<Confined, String> {
    let tenant_name = tenant.unwrap_or(&policy.default_tenant);
    // `sandbox = "none"` turns the whole confinement off, tenant included: the
    // processes run as the host's own user, as on a machine without the sandbox.
    let user = if host_is_root() && policy.kind == SandboxKind::Bubblewrap {
        let user = ensure_tenant(tenant_name)?;
        if user.uid == 0 {
            return Err(format!(
                "tenant `{tenant_name}` is root: task processes never run as root"
            ));
        }
        Some(user)
    } else {
        None
    };
    prepare_work_dir(work_dir, user)?;
    let limits = &policy.limits;
    let cgroup = user.and_then(|_| PidsCgroup::create(limits.processes));
    let (mut command, mut note) = match policy.kind {
        SandboxKind::Bubblewrap => bubblewrap(work_dir, cwd, argv, user, limits)?,
        SandboxKind::None => {
            let mut c = tokio::process::Command::new(&argv[0]);
            c.args(&argv[1..]).current_dir(work_dir.join(cwd));
            (
                c,
                "no sandbox (policy says `sandbox = \"none\"`)".to_owned(),
            )
        }
    };
    match user {
        Some(u) => note.push_str(&format!(", as tenant `{tenant_name}` (uid {})", u.uid)),
        None => note.push_str(", as the host's own user"),
    }
    if cgroup.is_some() {
        note.push_str(&format!(", at most {} processes", limits.processes));
    }
    let rlimits = rlimits(limits, cgroup.is_none() && user.is_some());
    let procs_fd = cgroup.as_ref().map(|c| c.procs.as_raw_fd());
    // SAFETY: the closure only makes async-signal-safe system calls (write, setrlimit)
    // on values prepared before the fork.
    unsafe {
        command.pre_exec(move || {
            if let Some(fd) = procs_fd {
                // "0" moves the calling process: the child joins before it can fork.
                if libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            for &(resource, value) in &rlimits {
                let lim = libc::rlimit {
                    rlim_cur: value,
                    rlim_max: value,
                };
                if libc::setrlimit(resource, &lim) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    Ok(Confined {
        command,
        cgroup,
        note,
    })
}

#[cfg(target_os = "linux")]
type Resource = libc::__rlimit_resource_t;
#[cfg(not(target_os = "linux"))]
type Resource = libc::c_int;

/// The rlimits for a task's processes. `RLIMIT_NPROC` counts per real uid, so it is a
/// per-task bound only when no cgroup does that job and the task runs as a tenant.
fn rlimits(limits: &ProcessLimits, nproc: bool) -> Vec<(Resource, libc::rlim_t)> {
    let mb = |v: u64| v.saturating_mul(1024 * 1024) as libc::rlim_t;
    let mut out = vec![
        (libc::RLIMIT_CPU, limits.cpu_seconds as libc::rlim_t),
        (libc::RLIMIT_AS, mb(limits.address_space_mb)),
        (libc::RLIMIT_NOFILE, limits.open_files as libc::rlim_t),
        (libc::RLIMIT_FSIZE, mb(limits.file_size_mb)),
    ];
    if nproc {
        out.push((libc::RLIMIT_NPROC, limits.processes as libc::rlim_t));
    }
    // A process may lower its limits but, without root, not raise the hard ones: never
    // ask for more than the host already has, or the spawn itself fails.
    for (resource, value) in &mut out {
        let mut now = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit writes into the struct we pass.
        if unsafe { libc::getrlimit(*resource, &mut now) } == 0 {
            *value = (*value).min(now.rlim_max);
        }
    }
    out
}

/// The work dir belongs to the task alone: mode 0700, owned by the tenant when the host
/// drops to one (the host, as root, still reads and removes it).
fn prepare_work_dir(work_dir: &Path, user: Option<TenantUser>) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let fail = |e: std::io::Error| format!("cannot prepare work dir {}: {e}", work_dir.display());
    std::fs::set_permissions(work_dir, std::fs::Permissions::from_mode(0o700)).map_err(fail)?;
    if let Some(u) = user {
        std::os::unix::fs::chown(work_dir, Some(u.uid), Some(u.gid)).map_err(fail)?;
    }
    Ok(())
}

fn bubblewrap(
    work_dir: &Path,
    cwd: &Path,
    argv: &[String],
    user: Option<TenantUser>,
    limits: &ProcessLimits,
) -> Result<(tokio::process::Command, String), String> {
    let bwrap = which("bwrap").ok_or_else(|| {
        "the process sandbox needs bubblewrap (`bwrap`), which is not installed on this host: install it (Debian: apt-get install bubblewrap), or have the operator set `sandbox = \"none\"` in the policy".to_owned()
    })?;
    // A system directory that holds the work dir would show the data dir to the task.
    if let Some(dir) = SYSTEM_DIRS.iter().find(|d| work_dir.starts_with(d)) {
        return Err(format!(
            "the work dir {} lies inside {dir}, which the sandbox shows to every task: move the data dir elsewhere",
            work_dir.display()
        ));
    }
    let mut c = tokio::process::Command::new(bwrap);
    c.args([
        "--die-with-parent",
        "--new-session",
        "--unshare-pid",
        "--unshare-ipc",
        "--unshare-uts",
        "--unshare-cgroup-try",
    ]);
    if !limits.network {
        c.arg("--unshare-net");
    }
    for dir in SYSTEM_DIRS {
        c.args(["--ro-bind-try", dir, dir]);
    }
    c.arg("--bind")
        .arg(work_dir)
        .arg(SANDBOX_WORK_DIR)
        .args(["--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp"])
        .arg("--chdir")
        .arg(Path::new(SANDBOX_WORK_DIR).join(cwd));
    if let Some(u) = user {
        c.args(["--", "setpriv"])
            .arg(format!("--reuid={}", u.uid))
            .arg(format!("--regid={}", u.gid))
            .args(["--clear-groups", "--bounding-set=-all", "--no-new-privs"]);
    }
    c.arg("--").args(argv);
    let net = if limits.network { "" } else { ", no network" };
    Ok((
        c,
        format!(
            "sandboxed (bubblewrap: own PID/IPC namespaces{net}, sees only its work dir and system dirs)"
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_cover_every_resource_and_nproc_only_when_asked() {
        let l = ProcessLimits::default();
        let set: Vec<_> = rlimits(&l, false).into_iter().map(|(r, _)| r).collect();
        assert!(set.contains(&libc::RLIMIT_CPU) && set.contains(&libc::RLIMIT_AS));
        assert!(set.contains(&libc::RLIMIT_NOFILE) && set.contains(&libc::RLIMIT_FSIZE));
        assert!(!set.contains(&libc::RLIMIT_NPROC));
        assert!(
            rlimits(&l, true)
                .iter()
                .any(|(r, v)| *r == libc::RLIMIT_NPROC && *v == 256)
        );
    }

    #[test]
    fn a_work_dir_inside_a_system_dir_is_refused() {
        let err = bubblewrap(
            Path::new("/usr/local/shoal/work/1"),
            Path::new(""),
            &["true".to_owned()],
            None,
            &ProcessLimits::default(),
        )
        .err();
        if which("bwrap").is_some() {
            assert!(err.unwrap().contains("inside /usr"));
        }
    }
}
