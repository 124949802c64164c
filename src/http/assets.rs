//! The vendored front-end assets under `static/`, compiled into the binary so
//! `warmline` is one self-contained file and pages never load from a CDN.

use actix_web::http::header;
use actix_web::{HttpResponse, get, web};

use crate::error::ApiError;

const ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "htmx.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../static/htmx.min.js"),
    ),
    (
        "warmline.css",
        "text/css; charset=utf-8",
        include_bytes!("../../static/warmline.css"),
    ),
];

#[get("/static/{file}")]
async fn asset(file: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let (_, content_type, body) = ASSETS
        .iter()
        .find(|(name, _, _)| *name == file.as_str())
        .ok_or_else(|| ApiError::NotFound(format!("no asset named {file}")))?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, *content_type))
        // Names change with content only on upgrade; an hour is safe.
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .body(*body))
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(asset);
}
