//! The web UI at `/`: the built assets of `ui/` (committed under `ui/dist`), embedded in
//! the binary so a user with only rustup gets the UI, or read from a directory given
//! with `--ui-dir` while the UI is being developed.
//!
//! The UI is a single page with hash routes (`/#/instances/7`), so only `/`,
//! `/index.html` and `/assets/*` are served here; every other path stays the API's. The
//! page talks to the API on the same origin only: its Content-Security-Policy forbids
//! any other address, so no CDN, font or tracker can be fetched from it.

use std::path::{Component, Path, PathBuf};

use axum::Router;
use axum::body::Body;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

#[derive(rust_embed::RustEmbed)]
#[folder = "../../ui/dist"]
struct Assets;

/// What a page may load: only this origin, and nothing inline (the pages position boxes
/// through the CSSOM, which this does not restrict). `data:` images only for the empty
/// favicon.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
                   img-src 'self' data:; connect-src 'self'; font-src 'self'; \
                   object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// The largest file `--ui-dir` serves: a built UI is a few hundred KiB.
const MAX_DEV_FILE: u64 = 16 << 20;

/// Where the assets come from.
#[derive(Debug, Clone)]
enum Source {
    Embedded,
    Dir(PathBuf),
}

/// The UI's routes: embedded assets, or those under `dir` when given.
pub fn router<S: Clone + Send + Sync + 'static>(dir: Option<PathBuf>) -> Router<S> {
    let source = dir.map_or(Source::Embedded, Source::Dir);
    Router::new()
        .route("/", get(index))
        .route("/index.html", get(index))
        .route("/assets/{*file}", get(asset))
        .with_state(source)
}

/// Whether the embedded build has a page (a checkout without `ui/dist` builds, but
/// serves a note instead of the UI).
pub fn embedded() -> bool {
    Assets::get("index.html").is_some()
}

async fn index(State(source): State<Source>) -> Response {
    match load(&source, "index.html").await {
        Some((bytes, _)) => {
            let mut r =
                ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], bytes).into_response();
            let h = r.headers_mut();
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            h.insert(
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(CSP),
            );
            h.insert(
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            );
            h.insert(
                header::REFERRER_POLICY,
                HeaderValue::from_static("no-referrer"),
            );
            r
        }
        None => (
            StatusCode::NOT_FOUND,
            "this build has no web UI: ui/dist was empty when it was compiled",
        )
            .into_response(),
    }
}

async fn asset(State(source): State<Source>, UrlPath(file): UrlPath<String>) -> Response {
    let name = format!("assets/{file}");
    match load(&source, &name).await {
        Some((bytes, mime)) => {
            let mut r = Response::new(Body::from(bytes));
            let h = r.headers_mut();
            if let Ok(v) = HeaderValue::from_str(&mime) {
                h.insert(header::CONTENT_TYPE, v);
            }
            // Built asset names carry a hash of their content.
            h.insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=31536000, immutable"),
            );
            h.insert(
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            );
            r
        }
        None => (StatusCode::NOT_FOUND, "no such asset").into_response(),
    }
}

/// A file's bytes and MIME type, or none when it is not there (or names a path outside
/// the UI's directory).
async fn load(source: &Source, name: &str) -> Option<(Vec<u8>, String)> {
    let mime = mime_guess::from_path(name)
        .first_or_octet_stream()
        .essence_str()
        .to_owned();
    match source {
        Source::Embedded => Assets::get(name).map(|f| (f.data.into_owned(), mime)),
        Source::Dir(dir) => {
            let path = inside(dir, name)?;
            // A symlink in the directory must not lead out of it.
            let (real, root) = (
                tokio::fs::canonicalize(&path).await.ok()?,
                tokio::fs::canonicalize(dir).await.ok()?,
            );
            if !real.starts_with(&root) {
                return None;
            }
            let meta = tokio::fs::metadata(&real).await.ok()?;
            if !meta.is_file() || meta.len() > MAX_DEV_FILE {
                return None;
            }
            tokio::fs::read(&real).await.ok().map(|b| (b, mime))
        }
    }
}

/// `dir/name` when `name` is plain relative segments (no `..`, no root, no prefix).
fn inside(dir: &Path, name: &str) -> Option<PathBuf> {
    let rel = Path::new(name);
    rel.components()
        .all(|c| matches!(c, Component::Normal(_)))
        .then(|| dir.join(rel))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::Request;
    use tower::ServiceExt as _;

    async fn get_path(app: Router, path: &str) -> (StatusCode, Vec<u8>) {
        let r = app
            .oneshot(Request::get(path).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = r.status();
        let bytes = axum::body::to_bytes(r.into_body(), 1 << 24).await.unwrap();
        (status, bytes.to_vec())
    }

    #[tokio::test]
    async fn serves_the_embedded_page_with_a_same_origin_policy() {
        assert!(embedded(), "ui/dist/index.html is committed");
        let app: Router = router(None);
        let r = app
            .clone()
            .oneshot(Request::get("/").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let csp = r.headers()[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap();
        assert!(csp.contains("default-src 'self'"));
        let html = String::from_utf8(
            axum::body::to_bytes(r.into_body(), 1 << 20)
                .await
                .unwrap()
                .to_vec(),
        )
        .unwrap();
        // Every script and stylesheet the page names is served from here.
        let mut found = 0;
        for part in html.split("\"/assets/").skip(1) {
            let file = &part[..part.find('"').unwrap()];
            let (status, body) = get_path(app.clone(), &format!("/assets/{file}")).await;
            assert_eq!(status, StatusCode::OK, "{file}");
            assert!(!body.is_empty());
            found += 1;
        }
        assert!(found >= 1, "the page names its bundle: {html}");
        assert!(!html.contains("http://") && !html.contains("https://"));
    }

    #[tokio::test]
    async fn a_dev_dir_serves_its_files_and_nothing_outside_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("assets")).unwrap();
        std::fs::write(dir.path().join("index.html"), "<p>dev</p>").unwrap();
        std::fs::write(dir.path().join("assets/a.js"), "1").unwrap();
        std::fs::write(dir.path().join("secret"), "no").unwrap();
        std::os::unix::fs::symlink(dir.path().join("secret"), dir.path().join("assets/link.js"))
            .unwrap();
        let app: Router = router(Some(dir.path().join(".")));
        assert_eq!(
            get_path(app.clone(), "/").await,
            (StatusCode::OK, b"<p>dev</p>".to_vec())
        );
        assert_eq!(
            get_path(app.clone(), "/assets/a.js").await.0,
            StatusCode::OK
        );
        assert_eq!(
            get_path(app.clone(), "/assets/..%2Fsecret").await.0,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            get_path(app.clone(), "/assets/../secret").await.0,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            get_path(app, "/assets/missing.js").await.0,
            StatusCode::NOT_FOUND
        );
    }
}
