//! Jars on a Flink cluster, uploaded once per content: the upload's file name carries
//! the jar's SHA-256, and `GET /jars` finds an earlier upload of the same bytes.

use shoal_sdk::prelude::*;
use shoal_sdk::serde_json::Value;

use crate::Cluster;

/// A jar as DolphinScheduler names it: a path (`main_package: x.jar`) or a resource
/// object (`mainJar: {resourceName: x.jar}`).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum JarRef {
    Path(String),
    Resource {
        #[serde(alias = "resourceName", alias = "res")]
        resource_name: String,
    },
}

impl JarRef {
    pub fn path(&self) -> &str {
        match self {
            Self::Path(p) => p,
            Self::Resource { resource_name } => resource_name,
        }
    }

    /// Problems with the path: it must stay inside the operator's resource directory.
    pub fn check(&self) -> Result<(), String> {
        let p = self.path().trim_start_matches('/');
        if p.is_empty() {
            return Err("names no jar".into());
        }
        if p.split('/').any(|part| part == ".." || part.is_empty()) {
            return Err(format!(
                "`{}` must be a path inside the Flink resource directory, without `..`",
                self.path()
            ));
        }
        if !p.ends_with(".jar") {
            return Err(format!("`{}` is not a .jar file", self.path()));
        }
        Ok(())
    }
}

/// The most bytes of a jar read into the plugin; the operator raises the plugin's
/// memory (`[plugins.flink] memory-mb`) for jars near it.
const MAX_JAR: u64 = 512 << 20;

/// Upload the jar at `guest_path` (a path inside the sandbox: the resource directory
/// or the CDC jar's folder) unless the cluster has these bytes already; returns the
/// cluster's jar id.
pub fn upload_jar(cluster: &Cluster, guest_path: &str) -> Result<String, Error> {
    use sha2::Digest;
    use std::io::Read;
    let file_name = guest_path.rsplit('/').next().unwrap_or("job.jar");
    let mut file = std::fs::File::open(guest_path)
        .map_err(|e| Error::new(format!("cannot open jar {guest_path}: {e}")))?;
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    if size > MAX_JAR {
        return Err(Error::new(format!(
            "jar {guest_path} is {size} bytes, more than the {MAX_JAR} a task uploads"
        )));
    }
    let boundary = "----shoal-flink-jar-upload-4f1c9e";
    let digest_name = |hex: &str| format!("shoal-{}-{file_name}", &hex[..16]);
    let mut bytes = Vec::with_capacity(size as usize);
    file.read_to_end(&mut bytes)
        .map_err(|e| Error::new(format!("cannot read jar {guest_path}: {e}")))?;
    let hex: String = sha2::Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let name = digest_name(&hex);
    if let Some(id) = find_uploaded(cluster, &name)? {
        log::info(format!(
            "jar {file_name} (sha256 {}) is on cluster `{}` already as {id}",
            &hex[..16],
            cluster.name
        ));
        return Ok(id);
    }
    // The file moves into the multipart body: one copy of it in memory.
    let mut body = Vec::with_capacity(bytes.len() + 512);
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"jarfile\"; filename=\"{name}\"\r\nContent-Type: application/x-java-archive\r\n\r\n"
        )
        .as_bytes(),
    );
    body.append(&mut bytes);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let request = shoal_sdk::http::Request::new("POST", format!("{}/jars/upload", cluster.url))
        .timeouts(Some(10_000), Some(300_000))
        .header(
            "content-type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(body);
    let (_, answer) = cluster.call(request)?;
    let filename = answer["filename"].as_str().ok_or_else(|| {
        Error::new(format!(
            "Flink's answer to the jar upload names no file: {answer}"
        ))
    })?;
    let id = filename.rsplit('/').next().unwrap_or(filename).to_owned();
    log::info(format!(
        "uploaded jar {file_name} ({size} bytes) to cluster `{}` as {id}",
        cluster.name
    ));
    Ok(id)
}

/// The id of an earlier upload named `name`, if the cluster still has it.
fn find_uploaded(cluster: &Cluster, name: &str) -> Result<Option<String>, Error> {
    let list = cluster.get("/jars")?;
    let files = list["files"].as_array().cloned().unwrap_or_default();
    Ok(files.iter().find_map(|f: &Value| {
        let id = f["id"].as_str()?;
        (f["name"].as_str() == Some(name) || id.ends_with(&format!("_{name}")))
            .then(|| id.to_owned())
    }))
}
