//! The call log's filters as an operator uses them: outcome, booked,
//! fallback used and words, through the page's query string.

use serde_json::json;

use crate::helpers::admin::{PASSWORD, admin_app, get, session};
use crate::helpers::voice::{retell, retell_call};

#[tokio::test]
async fn the_call_log_filters_by_outcome_booking_fallback_and_words() {
    let app = admin_app(&[]).await;
    for (id, transcript, successful) in [
        ("call_log_clean", "User: I need a Cleaning.", true),
        ("call_log_price", "User: what does it cost?", false),
    ] {
        let mut call = retell_call(id, "+15550100001");
        call["transcript"] = json!(transcript);
        call["call_analysis"] = json!({ "call_successful": successful, "call_summary": "s" });
        for event in ["call_started", "call_analyzed"] {
            let (status, answer) = retell(
                &app,
                "/retell/events",
                &json!({ "event": event, "call": call }),
            )
            .await;
            assert_eq!(status, 200, "{answer}");
        }
    }
    let cookie = session(&app, PASSWORD).await;
    let listed = |query: &'static str| {
        let (app, cookie) = (&app, cookie.clone());
        async move {
            let html = get(app, &format!("/admin/calls?{query}"), Some(&cookie))
                .await
                .text()
                .await
                .unwrap();
            ["call_log_clean", "call_log_price"]
                .into_iter()
                .filter(|id| html.contains(&format!(r#"href="/admin/calls/{id}""#)))
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(listed("q=CLEANING").await, ["call_log_clean"]);
    assert_eq!(listed("outcome=successful").await, ["call_log_clean"]);
    assert_eq!(listed("outcome=unsuccessful").await, ["call_log_price"]);
    assert_eq!(listed("booked=yes").await, Vec::<&str>::new());
    assert_eq!(
        listed("fallback=no&booked=no").await,
        ["call_log_clean", "call_log_price"]
    );
    assert_eq!(listed("fallback=yes").await, Vec::<&str>::new());

    let bad = get(&app, "/admin/calls?booked=maybe", Some(&cookie))
        .await
        .text()
        .await
        .unwrap();
    assert!(bad.contains("`booked`: expected yes or no"), "{bad}");
    let long = format!("/admin/calls?q={}", "a".repeat(201));
    let bad = get(&app, &long, Some(&cookie)).await.text().await.unwrap();
    assert!(bad.contains("`q`: at most 200 characters"), "{bad}");
}
