//! Hostile input on every form: empty, very long, unicode, NUL bytes,
//! invalid UTF-8, duplicated and missing fields, wrong content types and
//! markup or SQL injection strings. No 5xx, no markup reflected unescaped,
//! and the database still consistent afterwards.

use reqwest::StatusCode;

use crate::backend_tests;
use crate::helpers::{Backend, TestApp, spawn_app};

/// Every form: its action and its fields with a normal value each.
fn forms(visitor_id: &str) -> Vec<(String, Vec<(&'static str, String)>)> {
    let field = |name: &'static str, value: &str| (name, value.to_owned());
    vec![
        (
            "/accounts/login".into(),
            vec![
                field("username", "fred"),
                field("password", "tap dancing shoes"),
                field("next", "/"),
                field("captcha", "7"),
            ],
        ),
        (
            "/accounts/login/code".into(),
            vec![
                field("code", "ABCDEF234"),
                field("next", "/"),
                field("captcha", "7"),
            ],
        ),
        (
            "/accounts/password".into(),
            vec![
                field("current_password", "tap dancing shoes"),
                field("new_password", "a new long password"),
                field("confirm_password", "a new long password"),
            ],
        ),
        (
            "/visitors/enter".into(),
            vec![
                field("token", "68201321-9dd2-4fb3-92b1-24367f38a7d6"),
                field("next", "/"),
            ],
        ),
        (
            "/invites/send".into(),
            vec![
                field("email", "ginger@example.org"),
                field("name", "Ginger Rogers"),
                field("phone", "555"),
                field("replace", "yes"),
            ],
        ),
        ("/staff/invites/1/revoke".into(), vec![]),
        ("/staff/invites/1/resend".into(), vec![]),
        ("/staff/invites/not-a-number/revoke".into(), vec![]),
        ("/staff/mail/1/retry".into(), vec![]),
        ("/staff/mail/x/retry".into(), vec![]),
        (
            "/accounts/password/reset".into(),
            vec![field("login", "boss")],
        ),
        (
            "/accounts/password/reset/set-password".into(),
            vec![
                field("new_password", "a new long password"),
                field("confirm_password", "a new long password"),
            ],
        ),
        (format!("/staff/visitors/{visitor_id}/deactivate"), vec![]),
        (format!("/staff/visitors/{visitor_id}/reactivate"), vec![]),
        // A member's own pages and the staff member pages (issue 14).
        (
            "/accounts/profile".into(),
            vec![
                field("username", "boss"),
                field("first_name", "Fred"),
                field("last_name", "Astaire"),
                field("phone", "555 0100"),
            ],
        ),
        (
            "/accounts/profile/email".into(),
            vec![field("new_email", "boss@new.example")],
        ),
        (
            "/accounts/profile/email/confirm".into(),
            vec![field("token", &"ab".repeat(32))],
        ),
        ("/accounts/sessions/end".into(), vec![field("session", "x")]),
        ("/accounts/sessions/end-others".into(), vec![]),
        (
            "/accounts/delete".into(),
            vec![
                field("password", "tap dancing shoes"),
                field("code", "ABCDEF234"),
                field("confirm", "yes"),
            ],
        ),
        ("/staff/members/1/deactivate".into(), vec![]),
        ("/staff/members/1/reactivate".into(), vec![]),
        ("/staff/members/1/staff".into(), vec![field("staff", "no")]),
        ("/staff/members/x/staff".into(), vec![field("staff", "yes")]),
        ("/accounts/logout".into(), vec![]),
    ]
}

fn payloads() -> Vec<String> {
    vec![
        String::new(),
        " ".into(),
        "a".repeat(10_000),
        "<script>alert('xss')</script>".into(),
        "\"><img src=x onerror=alert(1)>".into(),
        "'; DROP TABLE users; --".into(),
        "' OR '1'='1".into(),
        "\0\0\0".into(),
        "null\u{0}byte".into(),
        "Ünïcødé ✓ 漢字 🎉 \u{202e}reversed".into(),
        "\r\nSet-Cookie: evil=1".into(),
        "../../../../etc/passwd".into(),
        "%00%ff%fe".into(),
        "{{ 7*7 }} {% raw %}".into(),
        "-1".into(),
        "99999999999999999999999999".into(),
        "//evil.example".into(),
        "javascript:alert(1)".into(),
    ]
}

const MARKUP: [&str; 2] = [
    "<script>alert('xss')</script>",
    "<img src=x onerror=alert(1)>",
];

async fn check(response: reqwest::Response, what: &str) {
    let status = response.status();
    assert!(!status.is_server_error(), "{what}: {status}");
    let body = response.text().await.unwrap_or_default();
    for markup in MARKUP {
        assert!(!body.contains(markup), "{what}: markup reflected unescaped");
    }
}

async fn post_raw(
    app: &TestApp,
    path: &str,
    content_type: &str,
    body: Vec<u8>,
) -> reqwest::Response {
    let token = app.csrf_token().await;
    app.client
        .post(app.url(path))
        .header("content-type", content_type)
        .header("x-csrf-token", token)
        .body(body)
        .send()
        .await
        .expect("POST")
}

async fn hostile_input_on_every_form_never_causes_a_server_error(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.create_user("boss", "boss@example.org", "tap dancing shoes", true)
        .await;
    let (visitor_id, _) = app.visitor("demo", "ginger@example.org", "Ginger").await;
    let mut sent = 0;
    // Each payload in each field, logged out and logged in as staff.
    for logged_in in [false, true] {
        if logged_in {
            app.login_with_password("boss", "tap dancing shoes").await;
        }
        for (path, fields) in forms(&visitor_id) {
            for payload in payloads() {
                for target in 0..fields.len().max(1) {
                    let mut form: Vec<(&str, String)> = fields.clone();
                    if let Some(slot) = form.get_mut(target) {
                        slot.1 = payload.clone();
                    }
                    let borrowed: Vec<(&str, &str)> =
                        form.iter().map(|(k, v)| (*k, v.as_str())).collect();
                    let response = app.post_form(&path, &borrowed).await;
                    check(response, &format!("{path} field {target} = {payload:.40?}")).await;
                    sent += 1;
                }
            }
            // Missing fields, duplicated fields, invalid UTF-8, NUL bytes,
            // a wrong content type and a body over the limit.
            let raw: Vec<(&str, Vec<u8>)> = vec![
                ("application/x-www-form-urlencoded", Vec::new()),
                (
                    "application/x-www-form-urlencoded",
                    b"username=a&username=b&code=x&code=y&next=/&next=//x".to_vec(),
                ),
                (
                    "application/x-www-form-urlencoded",
                    b"username=%FF%FE%00&password=\xff\xfe&code=\xc3\x28".to_vec(),
                ),
                (
                    "application/x-www-form-urlencoded",
                    b"=&&&==&%&%%%=%".to_vec(),
                ),
                (
                    "application/json",
                    br#"{"username":"a","password":"b"}"#.to_vec(),
                ),
                (
                    "multipart/form-data; boundary=x",
                    b"--x\r\nContent-Disposition: form-data; name=\"code\"\r\n\r\nA\r\n--x--"
                        .to_vec(),
                ),
                ("text/plain", b"\x00\x01\x02".to_vec()),
                ("application/x-www-form-urlencoded", vec![b'a'; 200 * 1024]),
            ];
            for (content_type, body) in raw {
                let response = post_raw(&app, &path, content_type, body).await;
                check(response, &format!("{path} raw {content_type}")).await;
                sent += 1;
            }
        }
        // Hostile query strings on the pages that read them.
        for query in [
            "next=%FF&code=%00",
            "vid=%FF",
            "vid=../../x",
            "q=%27%22%3C&scope=%00&state=x&page=-1",
            "page=99999999999999999999",
        ] {
            for page in [
                "/accounts/login",
                "/",
                "/staff/visitors",
                "/visitors/demo",
                "/invites/send",
                "/invites/sent",
                "/staff/invites",
                "/staff/mail",
                "/staff/audit",
                "/accounts/password/reset",
                "/accounts/password/reset/x",
                "/accounts/password/reset/set-password",
                "/references",
                "/references/1",
                "/references/request",
                "/references/respond",
                "/staff/members",
                "/staff/members/1",
                "/accounts/profile",
                "/accounts/profile/email/x",
                "/accounts/sessions",
                "/accounts/export",
                "/accounts/delete",
            ] {
                let response = app.get(&format!("{page}?{query}")).await;
                check(response, &format!("GET {page}?{query}")).await;
                sent += 1;
            }
        }
    }
    eprintln!("fuzz: {sent} hostile requests, no 5xx, no reflected markup");
    // The database is still consistent: only the staff member exists, the
    // visitor row is intact, and every table still answers.
    assert_eq!(app.scalar("SELECT COUNT(*) FROM users").await, 1);
    // Invitations made by the fuzzing staff member all have a valid e-mail.
    assert_eq!(
        app.scalar("SELECT COUNT(*) FROM invites WHERE email NOT LIKE '%@%.%'")
            .await,
        0
    );
    assert_eq!(app.scalar("SELECT COUNT(*) FROM visitors").await, 1);
    for table in [
        "sites",
        "invites",
        "sessions",
        "visitor_logs",
        "login_attempts",
    ] {
        app.scalar(&format!("SELECT COUNT(*) FROM {table}")).await;
    }
    if backend == Backend::Sqlite {
        use sea_orm::{ConnectionTrait, Statement};
        let row = app
            .db()
            .query_one_raw(Statement::from_string(
                sea_orm::DbBackend::Sqlite,
                "PRAGMA integrity_check",
            ))
            .await
            .expect("pragma")
            .expect("row");
        assert_eq!(row.try_get_by_index::<String>(0).expect("text"), "ok");
    }
    // The app still works for a normal person.
    let response = app.get("/accounts/login").await;
    assert_eq!(response.status(), StatusCode::OK);
}

backend_tests!(hostile_input_on_every_form_never_causes_a_server_error);
