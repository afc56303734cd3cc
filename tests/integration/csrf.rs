//! CSRF tokens bound to the session: a cookie/token pair from another
//! browser, or from before logging in or entering as a visitor, is refused;
//! the flows that renew or end a session leave a working token behind; https
//! sites use `__Host-` cookie names.

use reqwest::header::{COOKIE, SET_COOKIE};
use reqwest::{Response, StatusCode};

use crate::backend_tests;
use crate::helpers::{
    Backend, TestApp, assert_form_error, assert_redirects_to, spawn_app, spawn_app_with,
};

const CSRF: &str = "gatehouse_csrf";
const SESSION: &str = "gatehouse_session";

/// POSTs a form with exactly these cookies and this token, as a browser
/// whose cookies someone else has planted would.
async fn post_with(
    app: &TestApp,
    cookies: &str,
    token: &str,
    path: &str,
    fields: &[(&str, &str)],
) -> Response {
    let mut form = fields.to_vec();
    form.push(("csrf_token", token));
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
        .post(app.url(path))
        .header(COOKIE, cookies)
        .form(&form)
        .send()
        .await
        .expect("POST")
}

/// The Set-Cookie header for cookie `name`, if the response has one.
fn set_cookie(response: &Response, name: &str) -> Option<String> {
    let prefix = format!("{name}=");
    response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&prefix))
        .map(str::to_owned)
}

const REFERENCE_REQUEST: [(&str, &str); 3] = [
    ("name", "Ginger Rogers"),
    ("email", "ginger@example.org"),
    ("message", "Could you write me a reference for the club?"),
];

async fn another_browsers_cookie_and_token_planted_in_a_members_browser_are_refused(
    backend: Backend,
) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.create_user("fred", "fred@example.org", "tap dancing shoes", false)
        .await;
    assert_redirects_to(
        &app.login_with_password("fred", "tap dancing shoes").await,
        "/",
    );
    let freds_session = app.cookie(SESSION).expect("Fred's session cookie");
    // Eve's own browser: first anonymous, then logged in to her own account.
    let eve = app.new_browser();
    let eves_anonymous_token = eve.csrf_token().await;
    app.create_user("eve", "eve@example.org", "eavesdropping is fun", false)
        .await;
    assert_redirects_to(
        &eve.login_with_password("eve", "eavesdropping is fun").await,
        "/",
    );
    let eves_session_token = eve.csrf_token().await;

    for planted in [&eves_anonymous_token, &eves_session_token] {
        let response = post_with(
            &app,
            &format!("{SESSION}={freds_session}; {CSRF}={planted}"),
            planted,
            "/references/request",
            &REFERENCE_REQUEST,
        )
        .await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
    }
    assert_eq!(
        app.scalar("SELECT COUNT(*) FROM reference_requests").await,
        0,
        "no reference was requested in Fred's name"
    );
    assert_eq!(app.whoami().await.as_deref(), Some("fred"));

    // Fred's own browser, with his own pair, does it.
    let response = app
        .post_form("/references/request", &REFERENCE_REQUEST)
        .await;
    assert_redirects_to(&response, "/references");
    assert_eq!(
        app.scalar("SELECT COUNT(*) FROM reference_requests").await,
        1
    );
}

async fn a_token_from_before_login_is_void_after_it_and_the_normal_flow_works(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.create_user("fred", "fred@example.org", "tap dancing shoes", false)
        .await;
    let before_login = app.csrf_token().await;
    let response = app.login_with_password("fred", "tap dancing shoes").await;
    assert_redirects_to(&response, "/");
    assert!(
        set_cookie(&response, CSRF).is_some(),
        "logging in answers with a new CSRF cookie"
    );
    let logged_in = app.cookie(CSRF).expect("a CSRF cookie");
    assert_ne!(before_login, logged_in);
    let html = app.get_html("/accounts/password").await;
    assert!(
        html.contains(&format!("value=\"{logged_in}\"")),
        "the page's forms carry the cookie's token"
    );

    // The pair from before logging in, with the logged-in session: refused.
    let session = app.cookie(SESSION).expect("a session cookie");
    let response = post_with(
        &app,
        &format!("{SESSION}={session}; {CSRF}={before_login}"),
        &before_login,
        "/accounts/logout",
        &[],
    )
    .await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(app.whoami().await.as_deref(), Some("fred"));

    // Changing the password renews the session, and the token with it.
    let response = app
        .post_form(
            "/accounts/password",
            &[
                ("current_password", "tap dancing shoes"),
                ("new_password", "top hat white tie"),
                ("confirm_password", "top hat white tie"),
            ],
        )
        .await;
    assert_redirects_to(&response, "/");
    let renewed = app.cookie(CSRF).expect("a CSRF cookie");
    assert_ne!(renewed, logged_in);
    let session = app.cookie(SESSION).expect("a session cookie");
    let response = post_with(
        &app,
        &format!("{SESSION}={session}; {CSRF}={logged_in}"),
        &logged_in,
        "/accounts/logout",
        &[],
    )
    .await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(app.whoami().await.as_deref(), Some("fred"));

    // Logging out works with the current token and leaves a working one.
    assert_redirects_to(
        &app.post_form("/accounts/logout", &[]).await,
        "/accounts/logged-out",
    );
    assert_eq!(app.whoami().await, None);
    assert_ne!(app.cookie(CSRF).expect("a CSRF cookie"), renewed);
    assert_form_error(
        app.login_with_password("fred", "tap dancing shoes").await,
        "do not match",
    )
    .await;
    assert_redirects_to(
        &app.login_with_password("fred", "top hat white tie").await,
        "/",
    );
}

async fn entering_as_a_visitor_binds_the_token_and_the_next_post_works(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let (_, link) = app.visitor("demo", "ginger@example.org", "Ginger").await;
    let before = app.csrf_token().await;
    let response = app.follow_link(&format!("/visitors/demo?vid={link}")).await;
    assert_redirects_to(&response, "/visitors/demo");
    assert!(set_cookie(&response, CSRF).is_some());
    assert_visitor_token_renewed(&app, &before).await;
}

async fn with_confirm_on_link_off_the_stashing_get_binds_the_token(backend: Backend) {
    let Some(app) = spawn_app_with(backend, |settings| {
        settings.visitors.confirm_on_link = false;
    })
    .await
    else {
        return;
    };
    let (_, link) = app.visitor("demo", "ginger@example.org", "Ginger").await;
    let before = app.csrf_token().await;
    let response = app.get(&format!("/visitors/demo?vid={link}")).await;
    assert_redirects_to(&response, "/visitors/demo");
    assert!(set_cookie(&response, CSRF).is_some());
    assert_visitor_token_renewed(&app, &before).await;
}

/// After entering as a visitor: the anonymous token `before` is refused in
/// the visitor's session, the new one works, and so does the one after.
async fn assert_visitor_token_renewed(app: &TestApp, before: &str) {
    let after = app.cookie(CSRF).expect("a CSRF cookie");
    assert_ne!(after, before);
    let session = app.cookie(SESSION).expect("a session cookie");
    let response = post_with(
        app,
        &format!("{SESSION}={session}; {CSRF}={before}"),
        before,
        "/accounts/logout",
        &[],
    )
    .await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let html = app.get_html("/visitors/demo").await;
    assert!(html.contains("Visiting as Ginger"), "still the visitor");
    assert_redirects_to(
        &app.post_form("/accounts/logout", &[]).await,
        "/accounts/logged-out",
    );
    assert!(!app.get_html("/").await.contains("Visiting as"));
    assert_form_error(
        app.login_with_password("fred", "not a password").await,
        "do not match",
    )
    .await;
}

async fn https_sites_use_host_prefixed_secure_cookies(backend: Backend) {
    let Some(app) = spawn_app_with(backend, |settings| {
        settings.server.base_url = "https://club.example.org".into();
    })
    .await
    else {
        return;
    };
    let assert_host_cookie = |cookie: &str| {
        let attributes: Vec<&str> = cookie.split("; ").skip(1).collect();
        assert!(attributes.contains(&"Secure"), "{cookie}");
        assert!(attributes.contains(&"Path=/"), "{cookie}");
        assert!(attributes.contains(&"HttpOnly"), "{cookie}");
        assert!(attributes.contains(&"SameSite=Lax"), "{cookie}");
        assert!(
            !attributes.iter().any(|a| a.starts_with("Domain")),
            "{cookie}"
        );
    };
    let response = app.get("/accounts/login").await;
    assert!(set_cookie(&response, CSRF).is_none());
    let cookie = set_cookie(&response, "__Host-gatehouse_csrf").expect("a __Host- CSRF cookie");
    assert_host_cookie(&cookie);
    let token = cookie
        .split_once('=')
        .and_then(|(_, rest)| rest.split(';').next())
        .expect("a value")
        .to_owned();

    // Only the prefixed cookie counts: the same token under the plain name
    // (which a sibling subdomain or plain http could set) is refused.
    app.create_user("fred", "fred@example.org", "tap dancing shoes", false)
        .await;
    let credentials = [("username", "fred"), ("password", "tap dancing shoes")];
    let response = post_with(
        &app,
        &format!("{CSRF}={token}"),
        &token,
        "/accounts/login",
        &credentials,
    )
    .await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);

    let response = post_with(
        &app,
        &format!("__Host-{CSRF}={token}"),
        &token,
        "/accounts/login",
        &credentials,
    )
    .await;
    assert_redirects_to(&response, "/");
    assert!(set_cookie(&response, SESSION).is_none());
    let session = set_cookie(&response, "__Host-gatehouse_session").expect("a __Host- session");
    assert_host_cookie(&session);
    let renewed = set_cookie(&response, "__Host-gatehouse_csrf").expect("a renewed CSRF cookie");
    assert_host_cookie(&renewed);
}

backend_tests!(
    another_browsers_cookie_and_token_planted_in_a_members_browser_are_refused,
    a_token_from_before_login_is_void_after_it_and_the_normal_flow_works,
    entering_as_a_visitor_binds_the_token_and_the_next_post_works,
    with_confirm_on_link_off_the_stashing_get_binds_the_token,
    https_sites_use_host_prefixed_secure_cookies,
);
