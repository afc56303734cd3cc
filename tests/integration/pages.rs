//! Pages every visitor can reach: home, health check, static files, error
//! pages, security headers, escaping and unreadable input.

use reqwest::StatusCode;

use crate::backend_tests;
use crate::helpers::{Backend, assert_redirects_to, csrf_fields, spawn_app};

async fn the_home_page_says_who_you_are(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let html = app.get_html("/").await;
    assert!(html.contains("You are not logged in."));
    assert!(html.contains("href=\"/accounts/login\""));
    app.create_user("fred", "fred@example.org", "tap dancing shoes", false)
        .await;
    app.login_with_password("fred", "tap dancing shoes").await;
    let html = app.get_html("/").await;
    assert!(html.contains("You are logged in to Gatehouse as a member."));
    assert!(html.contains("Signed in as fred"));
}

async fn healthz_answers_after_a_database_round_trip(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let response = app.get("/healthz").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers().get("set-cookie").is_none());
    assert_eq!(response.text().await.expect("body"), "ok\n");
    app.state.db.clone().close().await.expect("close");
    let response = app.get("/healthz").await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
}

async fn the_login_page_has_both_forms_with_their_fields(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let response = app.get("/accounts/login").await;
    assert_eq!(response.status(), StatusCode::OK);
    let cookie = response
        .headers()
        .get("set-cookie")
        .expect("csrf cookie")
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"));
    let html = response.text().await.expect("body");
    for needle in [
        "<form id=\"password-login\"",
        "action=\"/accounts/login\"",
        "name=\"username\"",
        "name=\"password\"",
        "<form id=\"code-login\"",
        "action=\"/accounts/login/code\"",
        "name=\"code\"",
        "name=\"next\"",
        "<label for=\"code\">",
        "<label for=\"username\">",
        "href=\"/static/gatehouse.",
    ] {
        assert!(html.contains(needle), "missing {needle}");
    }
    assert_eq!(html.matches("name=\"csrf_token\"").count(), 2);
    assert!(
        !html.contains("src=\"http") && !html.contains("href=\"http"),
        "everything is served by the site itself (no CDN)"
    );
}

/// The login page and the anonymous home are rendered once per site and
/// shared (`PlainPages`): every browser must still get its own CSRF token,
/// and whatever a browser brings of its own must still show.
async fn shared_page_copies_carry_each_browsers_own_token(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let mut tokens = Vec::new();
    // The first browser's page is rendered; the others get the copy.
    for _ in 0..3 {
        let browser = app.new_browser();
        let html = browser.get_html("/accounts/login").await;
        let token = browser.csrf_token().await;
        assert_eq!(csrf_fields(&html), [token.clone(), token.clone()]);
        let response = browser
            .post_form(
                "/accounts/login",
                &[("username", "nobody"), ("password", "wrong"), ("next", "")],
            )
            .await;
        assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
        tokens.push(token);
    }
    tokens.sort();
    tokens.dedup();
    assert_eq!(tokens.len(), 3, "every browser has a token of its own");

    // A page without a form makes no token and sets no cookie.
    let browser = app.new_browser();
    for _ in 0..2 {
        let response = browser.get("/").await;
        assert!(response.headers().get("set-cookie").is_none());
        let html = response.text().await.expect("body");
        assert!(html.contains("Welcome to Gatehouse"));
        assert!(csrf_fields(&html).is_empty());
    }

    // What a browser brings of its own is not on the copy.
    let html = app.get_html("/accounts/login?next=/references").await;
    assert!(html.contains("name=\"next\" value=\"&#x2F;references\""));
    app.create_user("fred", "fred@example.org", "tap dancing shoes", false)
        .await;
    app.login_with_password("fred", "tap dancing shoes").await;
    let html = app.get_html("/").await;
    assert!(html.contains("Welcome back, fred.") && html.contains("Hello, fred"));
    let html = app.get_html("/accounts/login").await;
    assert!(html.contains("You are already logged in as fred."));

    // A renamed site gets a new copy.
    app.execute("UPDATE sites SET name = 'Tango Club'").await;
    app.state.sites.refresh().await.expect("refreshed");
    let html = app.new_browser().get_html("/").await;
    assert!(html.contains("Welcome to Tango Club"), "{html}");
}

async fn head_requests_answer_like_get_without_a_body_or_side_effects(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.create_user("fred", "fred@example.org", "tap dancing shoes", false)
        .await;
    app.login_with_password("fred", "tap dancing shoes").await;
    for path in ["/", "/healthz", "/accounts/login", "/static/gatehouse.css"] {
        let response = app.client.head(app.url(path)).send().await.expect("HEAD");
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        assert!(response.bytes().await.expect("body").is_empty(), "{path}");
    }
    // The welcome message is still there for the first real page view.
    assert!(app.get_html("/").await.contains("Welcome back, fred."));
}

async fn unknown_pages_get_a_friendly_404(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let response = app.get("/no/such/page").await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .expect("ascii")
            .starts_with("text/html")
    );
    let html = response.text().await.expect("body");
    assert!(html.contains("Page not found"));
    assert!(html.contains("Go to the home page"));
    let response = app.get("/static/nope.css").await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}

async fn static_files_are_served_with_validators(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let response = app.get("/static/gatehouse.css").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .expect("ascii")
            .starts_with("text/css")
    );
    let etag = response.headers()["etag"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(response.headers().get("set-cookie").is_none());
    let again = app
        .client
        .get(app.url("/static/gatehouse.css"))
        .header("If-None-Match", &etag)
        .send()
        .await
        .expect("GET");
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    // Pages link the fingerprinted name, which browsers keep for good.
    let html = app.get_html("/accounts/login").await;
    let start = html
        .find("href=\"/static/gatehouse.")
        .expect("stylesheet link")
        + 6;
    let href = &html[start..start + html[start..].find('"').expect("closing quote")];
    assert!(
        href.ends_with(".css") && href.len() > "/static/gatehouse.css".len(),
        "{href}"
    );
    let response = app.get(href).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["cache-control"],
        "public, max-age=31536000, immutable"
    );
    assert_eq!(response.headers()["etag"].to_str().expect("ascii"), etag);
    // A name from an older build still answers, but is not kept.
    let response = app.get("/static/gatehouse.000000000000.css").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["cache-control"], "no-cache");
}

async fn every_response_carries_security_headers(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    for path in [
        "/",
        "/accounts/login",
        "/no/such/page",
        "/static/gatehouse.css",
        "/healthz",
    ] {
        let response = app.get(path).await;
        let headers = response.headers();
        let csp = headers["content-security-policy"].to_str().expect("ascii");
        assert!(
            csp.contains("default-src 'self'") && !csp.contains("unsafe-inline"),
            "{path}"
        );
        assert!(csp.contains("frame-ancestors 'none'"));
        assert_eq!(headers["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(headers["x-frame-options"], "DENY", "{path}");
        assert!(headers.contains_key("referrer-policy"), "{path}");
    }
}

async fn token_pages_send_no_referrer_and_https_sites_get_secure_cookies(backend: Backend) {
    let Some(app) = crate::helpers::spawn_app_with(backend, |settings| {
        settings.server.base_url = "https://club.example.org".into();
    })
    .await
    else {
        return;
    };
    let response = app.get("/accounts/login?code=ABCDEF234").await;
    assert_eq!(response.headers()["referrer-policy"], "no-referrer");
    let csrf = response.headers()["set-cookie"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(csrf.contains("Secure"), "{csrf}");
    app.create_user("fred", "fred@example.org", "tap dancing shoes", false)
        .await;
    let response = app.login_with_password("fred", "tap dancing shoes").await;
    let session = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("__Host-gatehouse_session="))
        .expect("a session cookie")
        .to_owned();
    assert!(
        session.contains("Secure")
            && session.contains("HttpOnly")
            && session.contains("SameSite=Lax"),
        "{session}"
    );
    // Plain http sites do not mark cookies Secure (they would never come back).
    let Some(plain) = spawn_app(backend).await else {
        return;
    };
    let response = plain.get("/accounts/login").await;
    assert!(
        !response.headers()["set-cookie"]
            .to_str()
            .expect("ascii")
            .contains("Secure")
    );
}

async fn markup_in_names_and_inputs_comes_out_escaped(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let code = app
        .invite("xss@example.org", "<script>alert(1)</script> Doe")
        .await;
    assert_redirects_to(&app.login_with_code(&code).await, "/");
    let html = app.get_html("/").await;
    assert!(!html.contains("<script>alert(1)</script>"));
    assert!(html.contains("&lt;script&gt;alert(1)&lt;&#x2F;script&gt;"));
    app.post_form("/accounts/logout", &[]).await;
    let response = app
        .login_with_password("<b>\"onmouseover=x", "whatever")
        .await;
    let html = response.text().await.expect("body");
    assert!(!html.contains("<b>\"onmouseover"));
    assert!(html.contains("&lt;b&gt;&quot;onmouseover=x"));
}

async fn unreadable_forms_get_a_clear_400_not_an_error(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let token = app.csrf_token().await;
    // Invalid UTF-8 in a field.
    let response = app
        .client
        .post(app.url("/accounts/login/code"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("code=%FF%FE&csrf_token={token}"))
        .send()
        .await
        .expect("POST");
    assert_eq!(
        response.status(),
        StatusCode::UNPROCESSABLE_ENTITY,
        "read as an unknown code"
    );
    // JSON where a form is expected, with the token in the header.
    let response = app
        .client
        .post(app.url("/accounts/login"))
        .header("x-csrf-token", &token)
        .json(&serde_json::json!({"username": "x", "password": "y"}))
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(
        response
            .text()
            .await
            .expect("body")
            .contains("normal web form")
    );
    // Far too much data.
    let big = "a".repeat(200 * 1024);
    let response = app
        .client
        .post(app.url("/accounts/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("csrf_token={token}&username={big}"))
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    // A duplicated field.
    let response = app
        .client
        .post(app.url("/accounts/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!(
            "csrf_token={token}&username=a&username=b&password=c"
        ))
        .send()
        .await
        .expect("POST");
    assert!(response.status().is_client_error(), "{}", response.status());
    // Invalid UTF-8 in a query string is read leniently; a NUL is refused
    // with a clear message (PostgreSQL cannot store one).
    // (A link's code moves into the session: 303, then the page.)
    let response = app.get("/accounts/login?next=%FF&code=%FE").await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let response = app.get("/accounts/login?next=%FF").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(app.get("/accounts/login").await.status(), StatusCode::OK);
    let response = app.get("/accounts/login?code=%00").await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(
        response
            .text()
            .await
            .expect("body")
            .contains("characters that are not allowed")
    );
}

backend_tests!(
    the_home_page_says_who_you_are,
    healthz_answers_after_a_database_round_trip,
    the_login_page_has_both_forms_with_their_fields,
    shared_page_copies_carry_each_browsers_own_token,
    head_requests_answer_like_get_without_a_body_or_side_effects,
    unknown_pages_get_a_friendly_404,
    static_files_are_served_with_validators,
    every_response_carries_security_headers,
    token_pages_send_no_referrer_and_https_sites_get_secure_cookies,
    markup_in_names_and_inputs_comes_out_escaped,
    unreadable_forms_get_a_clear_400_not_an_error,
);
