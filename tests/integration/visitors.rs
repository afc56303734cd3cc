//! Visitors: the django-visitors behaviour cases (seeds, PART E), with the
//! confirm-on-link landing page, token stripping and logging improvements.

use actix_web::{HttpResponse, web};
use gatehouse::visitors::{Bypass, VisitorGuard};
use reqwest::StatusCode;

use crate::backend_tests;
use crate::helpers::{
    Backend, TestApp, assert_redirects_to, location, spawn_app_with, spawn_app_with_routes,
    unescape,
};

/// Extra guarded views for the policies the app's own routes don't use.
fn test_routes(cfg: &mut web::ServiceConfig) {
    async fn ok() -> HttpResponse {
        HttpResponse::Ok().content_type("text/plain").body("OK")
    }
    cfg.service(
        web::resource("/test/any")
            .wrap(VisitorGuard::scope("*").bypass(Bypass::Nobody))
            .route(web::get().to(ok)),
    )
    .service(
        web::resource("/test/staff-bypass")
            .wrap(VisitorGuard::scope("demo").bypass(Bypass::Staff))
            .route(web::get().to(ok)),
    )
    .service(
        web::resource("/test/unlogged")
            .wrap(VisitorGuard::scope("demo").without_logging())
            .route(web::get().to(ok)),
    )
    .service(
        // The last step of a visitor flow: the visit ends and the link dies.
        web::resource("/test/leave")
            .wrap(VisitorGuard::scope("*").bypass(Bypass::Nobody))
            .route(web::get().to(
                |req: actix_web::HttpRequest,
                 visitor: gatehouse::visitors::CurrentVisitor,
                 state: web::Data<gatehouse::AppState>| async move {
                    gatehouse::visitors::end_access(
                        &req,
                        &state,
                        &visitor.id,
                        gatehouse::visitors::EndedReason::Deactivated,
                    )
                    .await
                    .map(|()| HttpResponse::Ok().body(format!("Goodbye {}", visitor.first_name)))
                    .map_err(actix_web::error::ErrorInternalServerError)
                },
            )),
    )
    .service(
        web::resource("/test/missing")
            .wrap(VisitorGuard::scope("demo"))
            .route(web::get().to(|| async { HttpResponse::NotFound().finish() })),
    );
}

async fn app(backend: Backend) -> Option<TestApp> {
    spawn_app_with_routes(backend, |_| {}, test_routes).await
}

async fn logs(app: &TestApp) -> i64 {
    app.flush_logs().await;
    app.scalar("SELECT COUNT(*) FROM visitor_logs").await
}

async fn who(app: &TestApp) -> String {
    app.get_html("/").await
}

async fn no_token_means_no_visitor_and_no_notice(backend: Backend) {
    let Some(app) = app(backend).await else {
        return;
    };
    let html = app.get_html("/?vid=").await;
    assert!(html.contains("You are not logged in."));
    assert!(!html.contains("Visiting as"));
    assert!(!html.contains("no longer valid"));
}

async fn a_valid_link_shows_a_landing_page_and_the_get_writes_nothing(backend: Backend) {
    let Some(app) = app(backend).await else {
        return;
    };
    let (_, token) = app.visitor("demo", "ginger@example.org", "Ginger").await;
    let response = app
        .get(&format!("/visitors/demo?vid={token}&a=1&b=two"))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["referrer-policy"], "no-referrer");
    assert_eq!(response.headers()["cache-control"], "no-store");
    let html = response.text().await.expect("body");
    assert!(html.contains("Hello Ginger"));
    assert!(html.contains("Continue as Ginger"));
    assert!(html.contains("name=\"next\" value=\"&#x2F;visitors&#x2F;demo?a=1&amp;b=two\""));
    assert!(
        app.cookie("gatehouse_session").is_none(),
        "no session was started"
    );
    assert_eq!(app.scalar("SELECT COUNT(*) FROM sessions").await, 0);
    assert_eq!(logs(&app).await, 0);
    assert!(!who(&app).await.contains("Visiting as"));
}

async fn a_head_request_never_writes_anything(backend: Backend) {
    let Some(app) = spawn_app_with_routes(
        backend,
        |settings| settings.visitors.confirm_on_link = false,
        test_routes,
    )
    .await
    else {
        return;
    };
    let (_, token) = app.visitor("demo", "ginger@example.org", "Ginger").await;
    let response = app
        .client
        .head(app.url(&format!("/visitors/demo?vid={token}")))
        .send()
        .await
        .expect("HEAD");
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response
            .headers()
            .get("set-cookie")
            .is_none_or(|c| !c.to_str().unwrap_or("").contains("gatehouse_session"))
    );
    assert_eq!(app.scalar("SELECT COUNT(*) FROM sessions").await, 0);
    assert_eq!(logs(&app).await, 0);
    // And a visitor's HEAD on a guarded page is not logged either.
    app.get(&format!("/visitors/demo?vid={token}")).await;
    let before = logs(&app).await;
    let response = app
        .client
        .head(app.url("/visitors/demo"))
        .send()
        .await
        .expect("HEAD");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(logs(&app).await, before);
}

async fn continuing_stashes_the_visitor_renews_the_session_and_strips_the_token(backend: Backend) {
    let Some(app) = app(backend).await else {
        return;
    };
    let (id, token) = app.visitor("demo", "ginger@example.org", "Ginger").await;
    // An existing anonymous session (a message from an earlier bad link).
    app.post_form(
        "/visitors/enter",
        &[
            ("token", "68201321-9dd2-4fb3-92b1-24367f38a7d6"),
            ("next", "/"),
        ],
    )
    .await;
    let before = app.cookie("gatehouse_session").expect("a session exists");

    let response = app
        .follow_link(&format!("/visitors/demo?a=1&vid={token}&b=2#top"))
        .await;
    assert_redirects_to(&response, "/visitors/demo?a=1&b=2");
    let after = app.cookie("gatehouse_session").expect("a session");
    assert_ne!(before, after, "the session id was renewed");

    let response = app.get("/visitors/demo?a=1&b=2").await;
    assert_eq!(response.status(), StatusCode::OK);
    let html = response.text().await.expect("body");
    assert!(html.contains("You are a visitor"));
    assert!(html.contains("Visiting as Ginger"));
    // The session is restored on later requests.
    assert!(who(&app).await.contains("Hello, Ginger"));

    // One row for the link use, one for the guarded page; neither holds the token.
    assert_eq!(logs(&app).await, 2);
    assert_eq!(
        app.scalar(&format!(
            "SELECT COUNT(*) FROM visitor_logs WHERE visitor_id = '{id}' AND status_code = 303 \
             AND http_method = 'POST' AND request_path = '/visitors/enter'"
        ))
        .await,
        1
    );
    assert_eq!(
        app.scalar(&format!(
            "SELECT COUNT(*) FROM visitor_logs WHERE request_path LIKE '%{token}%' OR referer LIKE '%{token}%'"
        ))
        .await,
        0
    );
}

async fn the_seed_mode_stashes_on_the_get_itself_then_redirects(backend: Backend) {
    let Some(app) = spawn_app_with(backend, |settings| {
        settings.visitors.confirm_on_link = false
    })
    .await
    else {
        return;
    };
    let (_, token) = app.visitor("demo", "ginger@example.org", "Ginger").await;
    let upper = token.to_uppercase().replace('-', "");
    let response = app
        .get(&format!("/visitors/demo?x=%20y&vuid={upper}"))
        .await;
    assert_redirects_to(&response, "/visitors/demo?x=%20y");
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert!(
        app.get_html("/visitors/demo?x=%20y")
            .await
            .contains("You are a visitor")
    );
    assert_eq!(logs(&app).await, 2);
}

/// Sends `GET target` exactly as written (reqwest would turn `\` into `/`);
/// returns the status, the Location header and the body.
async fn raw_get(app: &TestApp, target: &str) -> (u16, String, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let address = app.address.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address)
        .await
        .expect("connect");
    stream
        .write_all(
            format!("GET {target} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await
        .expect("write");
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.expect("read");
    let response = String::from_utf8_lossy(&response);
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status in {response:?}"));
    let location = response
        .lines()
        .take_while(|line| !line.is_empty())
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("location")
                .then(|| value.trim().to_owned())
        })
        .unwrap_or_default();
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    (status, location, body)
}

/// Paths a browser would read as another site when used as a redirect target.
const OFF_SITE_PATHS: [&str; 7] = [
    "//evil.example",
    "//evil.example/",
    "///evil.example",
    "/\\evil.example",
    "/%2F%2Fevil.example",
    "/%5Cevil.example",
    "https://evil.example/",
];

fn is_local(location: &str) -> bool {
    location.starts_with('/') && !location.starts_with("//") && !location.starts_with("/\\")
}

async fn the_seed_mode_redirect_never_leaves_the_site(backend: Backend) {
    let Some(app) = spawn_app_with(backend, |settings| {
        settings.visitors.confirm_on_link = false
    })
    .await
    else {
        return;
    };
    let (_, token) = app.visitor("demo", "ginger@example.org", "Ginger").await;
    for path in OFF_SITE_PATHS {
        let (status, location, _) = raw_get(&app, &format!("{path}?vid={token}&x=1")).await;
        assert!(status < 500, "{path}: {status}");
        if (300..400).contains(&status) {
            assert!(is_local(&location), "{path} redirected to {location:?}");
        }
    }
    // The same through an ordinary client, which sends `//evil.example` as is.
    let response = app.get(&format!("//evil.example?vid={token}")).await;
    assert_redirects_to(&response, "/");

    // An ordinary path still stashes the visitor and keeps the rest of the query.
    let browser = app.new_browser();
    let response = browser
        .get(&format!("/visitors/demo?x=1&vid={token}"))
        .await;
    assert_redirects_to(&response, "/visitors/demo?x=1");
    assert!(
        browser
            .get_html("/visitors/demo?x=1")
            .await
            .contains("Visiting as Ginger")
    );
}

async fn the_landing_page_and_enter_never_send_the_visitor_off_site(backend: Backend) {
    let Some(app) = app(backend).await else {
        return;
    };
    let (_, token) = app.visitor("demo", "ginger@example.org", "Ginger").await;
    for path in OFF_SITE_PATHS {
        let (status, location, body) = raw_get(&app, &format!("{path}?vid={token}")).await;
        assert!(status < 500, "{path}: {status}");
        if (300..400).contains(&status) {
            assert!(is_local(&location), "{path} redirected to {location:?}");
        }
        if status == 200 {
            // The button's `next` is where /visitors/enter sends the visitor.
            let body = unescape(&body);
            let marker = "name=\"next\" value=\"";
            let start = body.find(marker).expect("the landing page") + marker.len();
            let next = &body[start..start + body[start..].find('"').expect("quote")];
            assert!(is_local(next), "{path}: next is {next:?}");
        }
    }
    // The landing page's button continues to a local page.
    let response = app
        .follow_link(&format!("//evil.example?vid={token}"))
        .await;
    assert_redirects_to(&response, "/");
    // And /visitors/enter itself follows only local `next` values.
    for next in OFF_SITE_PATHS {
        let response = app
            .new_browser()
            .post_form("/visitors/enter", &[("token", &token), ("next", next)])
            .await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{next}");
        assert!(
            is_local(&location(&response)),
            "{next}: {}",
            location(&response)
        );
    }
    let response = app
        .new_browser()
        .post_form(
            "/visitors/enter",
            &[("token", &token), ("next", "/visitors/demo?x=1")],
        )
        .await;
    assert_redirects_to(&response, "/visitors/demo?x=1");
}

async fn unknown_inactive_and_expired_links_render_the_page_with_a_notice(backend: Backend) {
    let Some(app) = app(backend).await else {
        return;
    };
    let (inactive, inactive_token) = app.visitor("demo", "a@example.org", "In").await;
    let (expired, expired_token) = app.visitor("demo", "b@example.org", "Ex").await;
    app.execute(&format!(
        "UPDATE visitors SET is_active = false WHERE id = '{inactive}'"
    ))
    .await;
    app.execute(&format!(
        "UPDATE visitors SET expires_at = {} WHERE id = '{expired}'",
        app.days_ago(1)
    ))
    .await;
    // Each says what happened to the link, in words for the person holding it.
    // (Switched off before links recorded why: a general sentence.)
    let until = app.state.zone().format(
        chrono::Utc::now() - chrono::Duration::days(1),
        gatehouse::dates::DateStyle::Day,
    );
    for (token, state, why) in [
        (
            "68201321-9dd2-4fb3-92b1-24367f38a7d6".to_owned(),
            "unknown",
            "it may be incomplete — copy the whole link".to_owned(),
        ),
        (
            inactive_token,
            "deactivated",
            "This link was switched off. If you were sent a newer link, use that one.".to_owned(),
        ),
        (
            expired_token,
            "expired",
            format!("This link has expired: it worked until {until}, "),
        ),
    ] {
        let response = app.get(&format!("/?vid={token}")).await;
        assert_eq!(response.status(), StatusCode::OK, "no error status");
        let html = unescape(&response.text().await.expect("body"));
        assert!(
            html.contains(&format!("id=\"link-state\" data-state=\"{state}\"")),
            "{state}"
        );
        assert!(html.contains(&why), "{why}: {html}");
        assert!(html.contains("You are not logged in."));
    }
    assert_eq!(logs(&app).await, 0);
}

async fn a_malformed_token_gets_400(backend: Backend) {
    let Some(app) = app(backend).await else {
        return;
    };
    let response = app.get("/visitors/demo?vid=123").await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let html = unescape(&response.text().await.expect("body"));
    assert!(html.contains(
        "This link looks incomplete — copy the whole link from the e-mail into your browser."
    ));
    assert!(html.contains("<h1>This link looks incomplete</h1>"));
    assert!(!html.contains("error-code"), "no bare status code");
}

async fn a_deactivated_or_expired_visitor_is_dropped_from_the_session(backend: Backend) {
    let Some(app) = app(backend).await else {
        return;
    };
    let (id, token) = app.visitor("demo", "ginger@example.org", "Ginger").await;
    app.follow_link(&format!("/visitors/demo?vid={token}"))
        .await;
    assert_eq!(app.get("/visitors/demo").await.status(), StatusCode::OK);

    app.execute(&format!(
        "UPDATE visitors SET is_active = false WHERE id = '{id}'"
    ))
    .await;
    let response = app.get("/visitors/demo").await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    // The session's link was switched off: the page says so, not a bare 403.
    let html = response.text().await.expect("body");
    assert!(html.contains("data-state=\"deactivated\""), "{html}");
    assert!(!html.contains("error-code"));
    assert_eq!(
        app.scalar(&format!(
            "SELECT COUNT(*) FROM sessions WHERE data LIKE '%{id}%'"
        ))
        .await,
        0,
        "the session no longer holds the visitor"
    );

    // Reactivated, used again, then expired: dropped the same way.
    app.execute(&format!(
        "UPDATE visitors SET is_active = true WHERE id = '{id}'"
    ))
    .await;
    app.follow_link(&format!("/visitors/demo?vid={token}"))
        .await;
    assert_eq!(app.get("/visitors/demo").await.status(), StatusCode::OK);
    app.execute(&format!(
        "UPDATE visitors SET expires_at = {} WHERE id = '{id}'",
        app.days_ago(1)
    ))
    .await;
    assert_eq!(
        app.get("/visitors/demo").await.status(),
        StatusCode::FORBIDDEN
    );
}

async fn an_invalid_link_keeps_the_session_visitor_and_a_second_valid_one_replaces_it(
    backend: Backend,
) {
    let Some(app) = app(backend).await else {
        return;
    };
    let (_, ginger) = app.visitor("demo", "ginger@example.org", "Ginger").await;
    let (_, fred) = app.visitor("demo", "fred@example.org", "Fred").await;
    app.follow_link(&format!("/visitors/demo?vid={ginger}"))
        .await;
    let html = app
        .get_html("/?vid=68201321-9dd2-4fb3-92b1-24367f38a7d6")
        .await;
    assert!(html.contains("This link does not work") && html.contains("Hello, Ginger"));

    app.follow_link(&format!("/visitors/demo?vid={fred}")).await;
    assert!(who(&app).await.contains("Hello, Fred"));
}

async fn the_guard_checks_the_scope(backend: Backend) {
    let Some(app) = app(backend).await else {
        return;
    };
    // Anonymous, no visitor.
    let response = app.get("/visitors/demo").await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert!(
        response
            .text()
            .await
            .expect("body")
            .contains("only for visitors with a valid link")
    );
    assert_eq!(app.get("/test/any").await.status(), StatusCode::FORBIDDEN);

    // A visitor of another scope: 403 on "demo", 200 on "*".
    let (other, token) = app.visitor("other-scope", "x@example.org", "Xavier").await;
    app.follow_link(&format!("/?vid={token}")).await;
    let response = app.get("/visitors/demo").await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert!(
        response
            .text()
            .await
            .expect("body")
            .contains("does not give access to this page")
    );
    assert_eq!(app.get("/test/any").await.text().await.expect("body"), "OK");
    app.flush_logs().await;
    assert_eq!(
        app.scalar(&format!(
            "SELECT COUNT(*) FROM visitor_logs WHERE visitor_id = '{other}' AND status_code = 403"
        ))
        .await,
        1,
        "the refused visitor hit is logged with its status"
    );

    // A visitor of the scope.
    let (_, token) = app.visitor("demo", "g@example.org", "Ginger").await;
    app.follow_link(&format!("/?vid={token}")).await;
    assert_eq!(app.get("/visitors/demo").await.status(), StatusCode::OK);
    assert_eq!(app.get("/test/any").await.status(), StatusCode::OK);
}

async fn bypass_policies_let_members_staff_or_nobody_through_without_a_log(backend: Backend) {
    let Some(app) = app(backend).await else {
        return;
    };
    app.create_user("fred", "fred@example.org", "tap dancing shoes", false)
        .await;
    app.create_user("boss", "boss@example.org", "tap dancing shoes", true)
        .await;

    app.login_with_password("fred", "tap dancing shoes").await;
    assert_eq!(
        app.get("/visitors/demo").await.status(),
        StatusCode::OK,
        "members pass by default"
    );
    assert!(
        app.get_html("/visitors/demo")
            .await
            .contains("logged-in member")
    );
    assert_eq!(
        app.get("/test/staff-bypass").await.status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        app.get("/test/any").await.status(),
        StatusCode::FORBIDDEN,
        "bypass: nobody"
    );
    app.post_form("/accounts/logout", &[]).await;

    app.login_with_password("boss", "tap dancing shoes").await;
    assert_eq!(app.get("/test/staff-bypass").await.status(), StatusCode::OK);
    assert_eq!(app.get("/test/any").await.status(), StatusCode::FORBIDDEN);
    assert_eq!(logs(&app).await, 0, "bypassed hits are not visitor visits");
}

async fn logging_can_be_switched_off_and_records_the_view_status(backend: Backend) {
    let Some(app) = app(backend).await else {
        return;
    };
    let (id, token) = app.visitor("demo", "ginger@example.org", "Ginger").await;
    app.follow_link(&format!("/?vid={token}")).await;
    let after_entering = logs(&app).await;
    assert_eq!(app.get("/test/unlogged").await.status(), StatusCode::OK);
    assert_eq!(logs(&app).await, after_entering);
    assert_eq!(
        app.get("/test/missing").await.status(),
        StatusCode::NOT_FOUND
    );
    app.flush_logs().await;
    assert_eq!(
        app.scalar(&format!(
            "SELECT COUNT(*) FROM visitor_logs WHERE visitor_id = '{id}' AND request_path = '/test/missing' AND status_code = 404"
        ))
        .await,
        1
    );
}

async fn the_client_address_comes_from_trusted_proxies_only(backend: Backend) {
    let Some(app) = spawn_app_with(backend, |settings| {
        settings.server.trusted_proxies = vec!["127.0.0.1".parse().expect("ip")];
    })
    .await
    else {
        return;
    };
    let (id, token) = app.visitor("demo", "ginger@example.org", "Ginger").await;
    app.follow_link(&format!("/?vid={token}")).await;
    app.client
        .get(app.url("/visitors/demo"))
        .header("X-Forwarded-For", "198.51.100.1, 203.0.113.9")
        .header(
            "Referer",
            format!("https://mail.example/?vid={token}&from=mail"),
        )
        .send()
        .await
        .expect("GET");
    app.flush_logs().await;
    assert_eq!(
        app.scalar(&format!(
            "SELECT COUNT(*) FROM visitor_logs WHERE visitor_id = '{id}' AND remote_addr = '203.0.113.9' \
             AND referer = 'https://mail.example/?from=mail'"
        ))
        .await,
        1
    );
}

async fn an_anonymous_visitor_session_gets_the_visitors_lifetime(backend: Backend) {
    let Some(app) = app(backend).await else {
        return;
    };
    let (_, browser) = app.visitor_with("demo", "a@example.org", "Ann", 0).await;
    // The session cookie among the response's cookies (the CSRF one is renewed too).
    let session_cookie = |response: &reqwest::Response| {
        response
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|v| v.starts_with("gatehouse_session="))
            .expect("a session cookie")
            .to_owned()
    };
    let response = app.follow_link(&format!("/?vid={browser}")).await;
    let cookie = session_cookie(&response);
    assert!(!cookie.contains("Max-Age"), "{cookie}");

    let other = app.new_browser();
    let (_, timed) = app.visitor_with("demo", "b@example.org", "Bob", 1).await;
    let response = other.follow_link(&format!("/?vid={timed}")).await;
    let cookie = session_cookie(&response);
    assert!(cookie.contains("Max-Age=1"), "{cookie}");
    assert!(other.get_html("/").await.contains("Hello, Bob"));
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    assert!(
        !other.get_html("/").await.contains("Hello, Bob"),
        "the visit has ended"
    );
}

async fn ending_access_clears_the_session_and_kills_the_link(backend: Backend) {
    let Some(app) = app(backend).await else {
        return;
    };
    let (id, token) = app.visitor("demo", "ginger@example.org", "Ginger").await;
    app.follow_link(&format!("/?vid={token}")).await;
    assert_eq!(app.get("/visitors/demo").await.status(), StatusCode::OK);
    assert_eq!(app.get_html("/test/leave").await, "Goodbye Ginger");
    assert_eq!(
        app.scalar(&format!(
            "SELECT COUNT(*) FROM visitors WHERE id = '{id}' AND is_active = false"
        ))
        .await,
        1
    );
    assert_eq!(
        app.scalar(&format!(
            "SELECT COUNT(*) FROM sessions WHERE data LIKE '%{id}%' OR visitor_id IS NOT NULL"
        ))
        .await,
        0,
        "the session no longer holds the visitor"
    );
    assert!(!app.get_html("/").await.contains("Visiting as"));
    assert_eq!(
        app.get("/visitors/demo").await.status(),
        StatusCode::FORBIDDEN
    );
    let html = unescape(
        &app.get(&format!("/visitors/demo?vid={token}"))
            .await
            .text()
            .await
            .expect("body"),
    );
    assert!(html.contains("This link was switched off by the staff of this site on "));
}

async fn staff_list_filter_and_inspect_visitors(backend: Backend) {
    let Some(app) = app(backend).await else {
        return;
    };
    let (ginger, token) = app.visitor("demo", "ginger@example.org", "Ginger").await;
    let (fred, _) = app
        .visitor("reference-request", "fred@example.org", "Fred")
        .await;
    app.execute(&format!(
        "UPDATE visitors SET expires_at = {} WHERE id = '{fred}'",
        app.days_ago(1)
    ))
    .await;
    // The link used from two browsers: flagged as possibly shared.
    app.follow_link(&format!("/?vid={token}")).await;
    app.get("/visitors/demo").await;
    let second = app.new_browser();
    second.follow_link(&format!("/?vid={token}")).await;
    app.flush_logs().await;

    // Anonymous → login; member → 403.
    let response = app.get("/staff/visitors").await;
    assert_eq!(
        location(&response),
        "/accounts/login?next=%2Fstaff%2Fvisitors"
    );
    app.create_user("member", "member@example.org", "tap dancing shoes", false)
        .await;
    let member = app.new_browser();
    member
        .login_with_password("member", "tap dancing shoes")
        .await;
    assert_eq!(
        member.get("/staff/visitors").await.status(),
        StatusCode::FORBIDDEN
    );

    let staff = app.new_browser();
    app.create_user("boss", "boss@example.org", "tap dancing shoes", true)
        .await;
    staff.login_with_password("boss", "tap dancing shoes").await;
    let html = staff.get_html("/staff/visitors").await;
    assert!(html.contains("ginger@example.org") && html.contains("fred@example.org"));
    let html = staff.get_html("/staff/visitors?state=expired").await;
    assert!(html.contains("fred@example.org") && !html.contains("ginger@example.org"));
    let html = staff.get_html("/staff/visitors?scope=demo&q=GING").await;
    assert!(html.contains("ginger@example.org") && !html.contains("fred@example.org"));
    let html = staff.get_html("/staff/visitors?q=nobody-at-all").await;
    assert!(html.contains("No visitor matches these filters."));

    let html = staff.get_html(&format!("/staff/visitors/{ginger}")).await;
    assert!(html.contains("id=\"shared-link\""), "{html}");
    assert!(html.contains("used from 2 sessions"));
    assert!(
        html.contains("<dt>Reference id</dt><dd>42</dd>"),
        "context as readable pairs"
    );
    assert!(html.contains("GET &#x2F;visitors&#x2F;demo"));
    assert_eq!(
        staff.get("/staff/visitors/no-such-id").await.status(),
        StatusCode::NOT_FOUND
    );

    // Deactivating asks first, naming the person; nothing changes until then.
    let response = staff
        .post_form(&format!("/staff/visitors/{ginger}/deactivate"), &[])
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let question = response.text().await.expect("body");
    assert!(
        question.contains("Deactivate the visitor link of Ginger"),
        "{question}"
    );
    assert_eq!(
        app.get("/visitors/demo").await.status(),
        StatusCode::OK,
        "not yet deactivated"
    );
    let response = staff
        .post_form(
            &format!("/staff/visitors/{ginger}/deactivate"),
            &[("confirm", "yes")],
        )
        .await;
    assert_redirects_to(&response, &format!("/staff/visitors/{ginger}"));
    assert!(
        staff
            .get_html(&format!("/staff/visitors/{ginger}"))
            .await
            .contains("has been deactivated")
    );
    assert_eq!(
        app.get("/visitors/demo").await.status(),
        StatusCode::FORBIDDEN
    );

    app.execute(&format!(
        "UPDATE visitors SET expires_at = {} WHERE id = '{ginger}'",
        app.days_ago(3)
    ))
    .await;
    staff
        .post_form(&format!("/staff/visitors/{ginger}/reactivate"), &[])
        .await;
    assert_eq!(
        app.scalar(&format!(
            "SELECT COUNT(*) FROM visitors WHERE id = '{ginger}' AND is_active = true AND expires_at > {}",
            app.days_ago(-13)
        ))
        .await,
        1,
        "reactivating extends the link by token_expiry_days"
    );
    let response = member
        .post_form(&format!("/staff/visitors/{ginger}/deactivate"), &[])
        .await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
}

async fn the_staff_visitor_list_is_paged_and_keeps_its_filters(backend: Backend) {
    let Some(app) = app(backend).await else {
        return;
    };
    for n in 0..30 {
        app.visitor("demo", &format!("guest{n:02}@example.org"), "Guest")
            .await;
    }
    app.staff_login().await;
    let html = app.get_html("/staff/visitors?scope=demo&q=guest").await;
    assert_eq!(html.matches("@example.org</td>").count(), 25);
    assert!(html.contains("Page 1 of 2"));
    assert!(
        html.contains("href=\"&#x2F;staff&#x2F;visitors?q=guest&amp;scope=demo&amp;page=2\""),
        "{html}"
    );
    let html = app
        .get_html("/staff/visitors?scope=demo&q=guest&page=2")
        .await;
    assert_eq!(html.matches("@example.org</td>").count(), 5);
    for nonsense in ["abc", "-3", "0", "99999999999999999999999"] {
        let response = app.get(&format!("/staff/visitors?page={nonsense}")).await;
        assert_eq!(response.status(), StatusCode::OK, "{nonsense}");
    }
}

async fn purge_deletes_long_expired_visitors_with_their_logs(backend: Backend) {
    let Some(app) = app(backend).await else {
        return;
    };
    let (old, token) = app.visitor("demo", "old@example.org", "Old").await;
    let (recent, _) = app.visitor("demo", "recent@example.org", "Recent").await;
    app.follow_link(&format!("/?vid={token}")).await;
    app.get("/visitors/demo").await;
    app.flush_logs().await;
    app.execute(&format!(
        "UPDATE visitors SET expires_at = {} WHERE id = '{old}'",
        app.days_ago(91)
    ))
    .await;
    app.execute(&format!(
        "UPDATE visitors SET expires_at = {} WHERE id = '{recent}'",
        app.days_ago(89)
    ))
    .await;

    let dry = gatehouse::purge::purge(app.db(), &app.state.settings, true)
        .await
        .expect("dry run");
    assert_eq!((dry.visitors, dry.visitor_logs), (1, 2));
    assert_eq!(
        app.scalar("SELECT COUNT(*) FROM visitors").await,
        2,
        "a dry run deletes nothing"
    );
    let done = gatehouse::purge::purge(app.db(), &app.state.settings, false)
        .await
        .expect("purge");
    assert_eq!(done, dry);
    assert_eq!(app.scalar("SELECT COUNT(*) FROM visitors").await, 1);
    assert_eq!(app.scalar("SELECT COUNT(*) FROM visitor_logs").await, 0);
}

backend_tests!(
    no_token_means_no_visitor_and_no_notice,
    a_valid_link_shows_a_landing_page_and_the_get_writes_nothing,
    a_head_request_never_writes_anything,
    continuing_stashes_the_visitor_renews_the_session_and_strips_the_token,
    the_seed_mode_stashes_on_the_get_itself_then_redirects,
    unknown_inactive_and_expired_links_render_the_page_with_a_notice,
    a_malformed_token_gets_400,
    a_deactivated_or_expired_visitor_is_dropped_from_the_session,
    an_invalid_link_keeps_the_session_visitor_and_a_second_valid_one_replaces_it,
    the_guard_checks_the_scope,
    bypass_policies_let_members_staff_or_nobody_through_without_a_log,
    logging_can_be_switched_off_and_records_the_view_status,
    the_client_address_comes_from_trusted_proxies_only,
    an_anonymous_visitor_session_gets_the_visitors_lifetime,
    ending_access_clears_the_session_and_kills_the_link,
    staff_list_filter_and_inspect_visitors,
    the_staff_visitor_list_is_paged_and_keeps_its_filters,
    purge_deletes_long_expired_visitors_with_their_logs,
    the_seed_mode_redirect_never_leaves_the_site,
    the_landing_page_and_enter_never_send_the_visitor_off_site,
);
