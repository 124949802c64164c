//! `/admin/tenants`: every tenant at a glance — called number and lines,
//! the Vapi assistant, time zone, adapters by kind, services — and a form
//! to create or edit one.
//!
//! What a valid tenant is and how its secrets stay hidden is `tenants/`'
//! business ([`Draft`], the same check as `warmline tenants import`, plus
//! the adapters' hosts a browser session may name,
//! `WARMLINE_ADMIN_UPSTREAM_HOSTS`); this module only carries the form and
//! checks that the number and lines are no other tenant's. The list's
//! notice after a change is one of a few fixed messages, named by code. Every change is audited (which fields,
//! never their values), counted, traced, and what any replica cached of the
//! tenant is dropped, so its next call uses the new configuration.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, get, post, web};
use askama::Template;
use askama_web::WebTemplate;
use serde::Deserialize;

use super::Chrome;
use crate::admin::AdminSettings;
use crate::admin::audit::{self, AuditRow};
use crate::admin::console::Console;
use crate::admin::session::{Operator, PageError, Role};
use crate::domain::TenantId;
use crate::error::ApiError;
use crate::store::TenantRow;
use crate::tenants::{
    CalendarConfig, CrmConfig, Draft, MemoryConfig, Problem, Tenant, TenantConfig, changed_fields,
    line_owner, number_owner,
};

const CHANGES: &str = "warmline_admin_tenant_changes_total";

/// One tenant in the list.
pub struct Listed {
    pub id: String,
    pub name: String,
    pub demo: bool,
    /// Set when the stored configuration cannot be read.
    pub broken: bool,
    pub phone_number: String,
    /// Vapi phone-number ids and SIP URIs.
    pub lines: Vec<String>,
    pub assistant: String,
    pub time_zone: String,
    /// (role, kind): `("crm", "gohighlevel")`.
    pub adapters: Vec<(&'static str, &'static str)>,
    pub services: Vec<String>,
    /// `provider: VARIABLE`, or `provider: ***` for an inline secret.
    pub webhook_secrets: Vec<String>,
}

impl Listed {
    fn of(row: TenantRow) -> Listed {
        let (id, name, phone_number) = (
            row.id.to_string(),
            row.name.clone(),
            row.phone_number.as_str().to_owned(),
        );
        let time_zone = row.time_zone.clone();
        let mut listed = Listed {
            id,
            name,
            demo: row.is_demo,
            broken: false,
            phone_number,
            lines: Vec::new(),
            assistant: String::new(),
            time_zone,
            adapters: Vec::new(),
            services: Vec::new(),
            webhook_secrets: Vec::new(),
        };
        // The reason is logged, not shown: it may quote the configuration.
        let Ok(t) =
            Tenant::from_row(row).inspect_err(|e| tracing::warn!(error = %e, "tenant unreadable"))
        else {
            listed.broken = true;
            return listed;
        };
        let c = &t.config;
        listed.lines = c.line_ids.clone();
        listed.assistant = match (&c.vapi_assistant_id, &c.vapi_assistant) {
            (Some(id), _) => id.clone(),
            (None, Some(_)) => "inline assistant".into(),
            (None, None) => String::new(),
        };
        listed.adapters = adapters(c);
        listed.services = c.services.iter().map(|s| s.name.clone()).collect();
        listed.webhook_secrets = c
            .credentials()
            .into_iter()
            .filter_map(|(at, cred)| {
                let provider = at.strip_prefix("webhook_secrets.")?;
                let shown = cred.token_env.as_deref().unwrap_or(crate::tenants::HIDDEN);
                Some(format!("{provider}: {shown}"))
            })
            .collect();
        listed
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "admin/tenants.html")]
struct ListPage {
    chrome: Chrome,
    tenants: Vec<Listed>,
    changes: Vec<AuditRow>,
    message: Option<&'static str>,
}

/// What a change did, as the list's `?done=` names it: a fixed code for a
/// fixed message, so a link cannot make the page say anything else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Done {
    Created,
    Updated,
    Unchanged,
    /// Saved, but Redis could not be flushed.
    CreatedUnflushed,
    UpdatedUnflushed,
}

impl Done {
    const ALL: [Done; 5] = [
        Done::Created,
        Done::Updated,
        Done::Unchanged,
        Done::CreatedUnflushed,
        Done::UpdatedUnflushed,
    ];

    fn code(self) -> &'static str {
        match self {
            Done::Created => "created",
            Done::Updated => "updated",
            Done::Unchanged => "unchanged",
            Done::CreatedUnflushed => "created-unflushed",
            Done::UpdatedUnflushed => "updated-unflushed",
        }
    }

    fn message(self) -> &'static str {
        match self {
            Done::Created => "Tenant created.",
            Done::Updated => "Tenant updated: what changed is listed under recent tenant changes.",
            Done::Unchanged => "Nothing changed.",
            Done::CreatedUnflushed => {
                "Tenant created. Redis could not be flushed: other replicas may use the old \
                 configuration until their copy expires."
            }
            Done::UpdatedUnflushed => {
                "Tenant updated. Redis could not be flushed: other replicas may use the old \
                 configuration until their copy expires."
            }
        }
    }

    fn parse(code: &str) -> Option<Done> {
        Done::ALL.into_iter().find(|d| d.code() == code)
    }
}

#[derive(Deserialize)]
struct Flash {
    done: Option<String>,
}

#[get("/admin/tenants")]
async fn list(
    console: web::Data<Console>,
    op: Operator,
    flash: web::Query<Flash>,
) -> Result<ListPage, PageError> {
    let tenants = console
        .store
        .list_tenants()
        .await?
        .into_iter()
        .map(Listed::of)
        .collect();
    let changes = audit::recent(&console.store, "tenant.", 20).await?;
    Ok(ListPage {
        chrome: Chrome::new(&console, &op, "/admin/tenants").await,
        tenants,
        changes,
        message: flash
            .done
            .as_deref()
            .and_then(Done::parse)
            .map(Done::message),
    })
}

#[derive(Template, WebTemplate)]
#[template(path = "admin/tenants_form.html")]
struct FormPage {
    chrome: Chrome,
    /// The tenant edited; `None` for a new one.
    editing: Option<String>,
    action: String,
    draft: Draft,
    /// The edited tenant's `updated_at_ms` when the form was made.
    version: i64,
    demo: bool,
    can_change: bool,
    problem: Option<Problem>,
    /// The field the problem is in, to mark it.
    invalid: &'static str,
}

impl FormPage {
    async fn new(console: &Console, op: &Operator, stored: Option<&Tenant>, draft: Draft) -> Self {
        FormPage {
            chrome: Chrome::new(console, op, "/admin/tenants").await,
            editing: stored.map(|t| t.id.to_string()),
            action: stored.map_or_else(
                || "/admin/tenants".to_owned(),
                |t| format!("/admin/tenants/{}", t.id),
            ),
            draft,
            version: stored.map_or(0, |t| t.updated_at_ms),
            demo: stored.is_some_and(|t| t.is_demo),
            can_change: op.role == Role::Admin,
            problem: None,
            invalid: "",
        }
    }

    /// The form again with the operator's input (secrets hidden) and what
    /// is wrong with it.
    fn refused(mut self, status: StatusCode, problem: Problem) -> Result<HttpResponse, PageError> {
        self.draft = self.draft.shown();
        self.invalid = problem.field;
        self.problem = Some(problem);
        let body = self
            .render()
            .map_err(|e| ApiError::Internal(anyhow::Error::new(e)))?;
        Ok(HttpResponse::build(status)
            .content_type("text/html; charset=utf-8")
            .body(body))
    }
}

/// The tenant at `/admin/tenants/{id}`, typed.
async fn stored(console: &Console, id: &str) -> Result<Tenant, PageError> {
    let missing = || ApiError::NotFound(format!("no tenant `{id}`"));
    let id = TenantId::parse(id).map_err(|_| missing())?;
    let row = console.store.tenant(&id).await?.ok_or_else(missing)?;
    Tenant::from_row(row).map_err(|e| {
        tracing::warn!(error = %e, "tenant unreadable");
        ApiError::NotFound(format!(
            "tenant `{id}` is stored but cannot be read (see the log); fix it with `warmline tenants import`"
        ))
        .into()
    })
}

#[get("/admin/tenants/new")]
async fn new_form(console: web::Data<Console>, op: Operator) -> Result<FormPage, PageError> {
    Ok(FormPage::new(&console, &op, None, Draft::blank()).await)
}

#[get("/admin/tenants/{id}")]
async fn edit_form(
    console: web::Data<Console>,
    op: Operator,
    id: web::Path<String>,
) -> Result<FormPage, PageError> {
    let tenant = stored(&console, &id).await?;
    Ok(FormPage::new(&console, &op, Some(&tenant), Draft::of(&tenant)).await)
}

/// The form as posted. Every field defaults to empty, so a form without
/// its CSRF token is refused as such (403), not as malformed.
#[derive(Deserialize)]
struct TenantForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    id: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    phone_number: String,
    #[serde(default)]
    time_zone: String,
    #[serde(default)]
    document: String,
    #[serde(default)]
    version: String,
}

impl TenantForm {
    fn draft(&self) -> Draft {
        Draft {
            id: self.id.clone(),
            name: self.name.clone(),
            phone_number: self.phone_number.clone(),
            time_zone: self.time_zone.clone(),
            document: self.document.clone(),
        }
    }
}

#[post("/admin/tenants")]
async fn create(
    console: web::Data<Console>,
    settings: web::Data<AdminSettings>,
    op: Operator,
    form: web::Form<TenantForm>,
) -> Result<HttpResponse, PageError> {
    op.may_change(&form.csrf)?;
    let draft = form.draft();
    let hosts = &upstream_hosts(&settings);
    match change(&console, &op, None, &draft, 0, hosts).await? {
        Changed::Saved { unflushed: false } => Ok(see_other(Done::Created)),
        Changed::Saved { unflushed: true } => Ok(see_other(Done::CreatedUnflushed)),
        Changed::Nothing => Ok(see_other(Done::Unchanged)),
        Changed::Refused(status, problem) => FormPage::new(&console, &op, None, draft)
            .await
            .refused(status, problem),
    }
}

/// Where this page may point an adapter: the official APIs and the
/// operator's `WARMLINE_ADMIN_UPSTREAM_HOSTS`.
fn upstream_hosts(settings: &AdminSettings) -> crate::tenants::UpstreamHosts {
    crate::tenants::UpstreamHosts {
        official: crate::upstreams::registry::official_hosts(),
        allowed: settings.upstream_hosts.clone(),
    }
}

#[post("/admin/tenants/{id}")]
async fn update(
    console: web::Data<Console>,
    settings: web::Data<AdminSettings>,
    op: Operator,
    id: web::Path<String>,
    form: web::Form<TenantForm>,
) -> Result<HttpResponse, PageError> {
    op.may_change(&form.csrf)?;
    let tenant = stored(&console, &id).await?;
    let version = form.version.trim().parse().unwrap_or(i64::MIN);
    let draft = form.draft();
    let hosts = &upstream_hosts(&settings);
    match change(&console, &op, Some(&tenant), &draft, version, hosts).await? {
        Changed::Saved { unflushed: false } => Ok(see_other(Done::Updated)),
        Changed::Saved { unflushed: true } => Ok(see_other(Done::UpdatedUnflushed)),
        Changed::Nothing => Ok(see_other(Done::Unchanged)),
        Changed::Refused(status, problem) => {
            let mut page = FormPage::new(&console, &op, Some(&tenant), draft).await;
            // The version the operator edited, not the one stored now: a
            // change made meanwhile stays detected when they send it again.
            page.version = version;
            page.refused(status, problem)
        }
    }
}

enum Changed {
    Saved {
        /// Set when Redis could not be flushed: other replicas may keep
        /// their copy until it expires.
        unflushed: bool,
    },
    Nothing,
    Refused(StatusCode, Problem),
}

fn refused(status: StatusCode, field: &'static str, message: String) -> Changed {
    Changed::Refused(status, Problem { field, message })
}

/// Creates (`before` is `None`) or updates a tenant from the form: checks
/// it, stores it unless someone changed it meanwhile, drops what every
/// replica cached of it, audits and counts the change. `upstream_hosts`
/// are the hosts besides the official APIs an adapter may be pointed at
/// (`WARMLINE_ADMIN_UPSTREAM_HOSTS`).
#[tracing::instrument(
    name = "admin.tenant.change",
    skip_all,
    fields(
        action = if before.is_some() { "update" } else { "create" },
        tenant = tracing::field::Empty,
        actor = op.actor(),
        outcome = tracing::field::Empty,
    )
)]
async fn change(
    console: &Console,
    op: &Operator,
    before: Option<&Tenant>,
    draft: &Draft,
    version: i64,
    upstream_hosts: &crate::tenants::UpstreamHosts,
) -> Result<Changed, PageError> {
    let span = tracing::Span::current();
    let action = if before.is_some() { "update" } else { "create" };
    let outcome = |what: &str| span.record("outcome", what);
    let row = match draft.check(before, upstream_hosts) {
        Ok(row) => row,
        Err(problem) => {
            outcome("invalid");
            return Ok(Changed::Refused(StatusCode::BAD_REQUEST, problem));
        }
    };
    span.record("tenant", row.id.as_str());
    if let Some(other) = number_owner(&console.store, &row).await? {
        outcome("number_taken");
        let message = format!(
            "{} already answers tenant `{other}`",
            row.phone_number.as_str()
        );
        return Ok(refused(StatusCode::BAD_REQUEST, "phone_number", message));
    }
    if let Some((line, other)) = line_owner(&console.store, &row).await? {
        outcome("line_taken");
        let message = match line.strip_prefix("whatsapp:") {
            Some(instance) => format!(
                "`whatsapp_instances`: instance `{instance}` already writes for tenant `{other}`"
            ),
            None => format!("`line_ids`: line `{line}` already answers tenant `{other}`"),
        };
        return Ok(refused(StatusCode::BAD_REQUEST, "config", message));
    }
    let stale = || {
        refused(
            StatusCode::CONFLICT,
            "version",
            "this tenant was changed by someone else since the form was opened: \
             open it again and redo the change"
                .into(),
        )
    };
    let fields = match before {
        None => {
            if !console.store.create_tenant(&row).await? {
                outcome("exists");
                return Ok(match console.store.tenant(&row.id).await? {
                    Some(_) => refused(
                        StatusCode::BAD_REQUEST,
                        "id",
                        format!("a tenant `{}` already exists", row.id),
                    ),
                    None => refused(
                        StatusCode::BAD_REQUEST,
                        "phone_number",
                        "another tenant has just taken this number".into(),
                    ),
                });
            }
            Vec::new()
        }
        Some(old) => {
            if version != old.updated_at_ms {
                outcome("stale");
                return Ok(stale());
            }
            let fields = changed_fields(old, &row);
            if fields.is_empty() {
                outcome("unchanged");
                return Ok(Changed::Nothing);
            }
            if !console.store.update_tenant(&row, version).await? {
                outcome("stale");
                return Ok(stale());
            }
            fields
        }
    };
    let tenant = console.tenants.by_id(&row.id).await?.ok_or_else(|| {
        ApiError::Internal(anyhow::anyhow!(
            "tenant {} unreadable right after saving",
            row.id
        ))
    })?;
    let dropped = console.tenants.forget(before, &tenant).await;
    let outcome_text = match &dropped.l2_error {
        None => format!("ok; {} cached entries dropped", dropped.flushed),
        // Other replicas may keep their copy until it expires.
        Some(_) => format!(
            "saved; {} cached entries dropped, but Redis could not be flushed",
            dropped.flushed
        ),
    };
    outcome("saved");
    metrics::counter!(CHANGES, "action" => action).increment(1);
    let target = match before {
        None => serde_json::json!({
            "tenant": tenant.id.as_str(),
            "name": tenant.name,
            "adapters": adapters(&tenant.config)
                .into_iter()
                .map(|(role, kind)| (role.to_owned(), serde_json::Value::from(kind)))
                .collect::<serde_json::Map<_, _>>(),
            "services": tenant.config.services.len(),
        }),
        Some(old) => {
            let mut target = serde_json::json!({ "tenant": tenant.id.as_str(), "changed": fields });
            if old.name != tenant.name {
                target["name"] = serde_json::json!({ "from": old.name, "to": tenant.name });
            }
            target
        }
    };
    crate::admin::audit::record(
        &console.store,
        op.actor(),
        &format!("tenant.{action}"),
        target,
        outcome_text,
    )
    .await;
    tracing::info!(
        cached_entries_dropped = dropped.flushed,
        "tenant {action}d from the admin"
    );
    Ok(Changed::Saved {
        unflushed: dropped.l2_error.is_some(),
    })
}

/// The adapters a tenant uses, by role and kind: `("crm", "gohighlevel")`.
fn adapters(c: &TenantConfig) -> Vec<(&'static str, &'static str)> {
    [
        ("crm", c.crm.as_ref().map(CrmConfig::kind)),
        ("memory", c.memory.as_ref().map(MemoryConfig::kind)),
        ("calendar", c.calendar.as_ref().map(CalendarConfig::kind)),
    ]
    .into_iter()
    .filter_map(|(role, kind)| Some((role, kind?)))
    .collect()
}

fn see_other(done: Done) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header(("location", format!("/admin/tenants?done={}", done.code())))
        .finish()
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    // The counter's known actions exist from the start, at 0.
    for action in ["create", "update"] {
        metrics::counter!(CHANGES, "action" => action).increment(0);
    }
    // `new` before `{id}`, so it is not taken for a tenant's id.
    cfg.service(list)
        .service(new_form)
        .service(create)
        .service(edit_form)
        .service(update);
}
