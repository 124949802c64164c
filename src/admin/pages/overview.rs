//! `/admin`: the overview.

use actix_web::{get, web};
use askama::Template;
use askama_web::WebTemplate;

use super::Chrome;
use crate::admin::console::Console;
use crate::admin::session::{Operator, PageError};

#[derive(Template, WebTemplate)]
#[template(path = "admin/overview.html")]
struct Overview {
    chrome: Chrome,
}

#[get("/admin")]
async fn overview(console: web::Data<Console>, op: Operator) -> Result<Overview, PageError> {
    Ok(Overview {
        chrome: Chrome::new(&console, &op, "/admin").await,
    })
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(overview);
}
