//! The page's static files (`ui/dist`, built by `npm run build`), read into memory at startup:
//! only those files can be served, whatever the path asks (no file system walk per request).
//! Any other path without a file extension is the single-page app (`index.html`), so
//! `/workspace/connections?status=authorized&completion=..` (the OAuth callback's landing) and a
//! notification's link open the page.

use axum::body::Body;
use axum::http::{HeaderValue, Response, StatusCode, header};
use bytes::Bytes;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// What every page answer carries: the page loads only its own scripts, styles and images and
/// talks only to its own origin (the gRPC-Web calls), and is never framed.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

#[derive(Debug, thiserror::Error)]
pub enum AssetsError {
    #[error(
        "the page is not built: {0} has no index.html (run `make web` or `npm --prefix services/web/ui ci && npm --prefix services/web/ui run build`)"
    )]
    NotBuilt(PathBuf),
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
}

#[derive(Clone, Default)]
pub struct Assets {
    files: HashMap<String, (&'static str, Bytes)>,
}

impl Assets {
    /// Reads every file under `dir` (which must hold `index.html`).
    pub fn load(dir: &Path) -> Result<Self, AssetsError> {
        if !dir.join("index.html").is_file() {
            return Err(AssetsError::NotBuilt(dir.to_path_buf()));
        }
        let mut files = HashMap::new();
        let mut todo = vec![dir.to_path_buf()];
        while let Some(d) = todo.pop() {
            let entries = std::fs::read_dir(&d).map_err(|source| AssetsError::Read {
                path: d.clone(),
                source,
            })?;
            for entry in entries {
                let entry = entry.map_err(|source| AssetsError::Read {
                    path: d.clone(),
                    source,
                })?;
                let path = entry.path();
                if path.is_dir() {
                    todo.push(path);
                    continue;
                }
                let bytes = std::fs::read(&path).map_err(|source| AssetsError::Read {
                    path: path.clone(),
                    source,
                })?;
                let rel = path
                    .strip_prefix(dir)
                    .unwrap_or(&path)
                    .to_string_lossy()
                    .replace('\\', "/");
                files.insert(format!("/{rel}"), (mime_of(&rel), Bytes::from(bytes)));
            }
        }
        Ok(Self { files })
    }

    /// The answer to `GET path`: the file, the page itself for an app route, or 404.
    pub fn get(&self, path: &str) -> Response<Body> {
        let last = path.rsplit('/').next().unwrap_or_default();
        let key = if self.files.contains_key(path) {
            path
        } else if !last.contains('.') {
            "/index.html"
        } else {
            return not_found();
        };
        match self.files.get(key) {
            Some((mime, bytes)) => page_response(StatusCode::OK, mime, bytes.clone()),
            None => not_found(),
        }
    }
}

fn not_found() -> Response<Body> {
    page_response(
        StatusCode::NOT_FOUND,
        "text/plain; charset=utf-8",
        Bytes::from_static(b"not found\n"),
    )
}

fn page_response(status: StatusCode, mime: &str, body: Bytes) -> Response<Body> {
    let mut res = Response::new(Body::from(body));
    *res.status_mut() = status;
    let h = res.headers_mut();
    if let Ok(v) = HeaderValue::from_str(mime) {
        h.insert(header::CONTENT_TYPE, v);
    }
    // Small files, rebuilt often: the browser asks again each time (a 200 from memory).
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    res
}

fn mime_of(path: &str) -> &'static str {
    match path.rsplit('.').next().unwrap_or_default() {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        _ => "application/octet-stream",
    }
}
