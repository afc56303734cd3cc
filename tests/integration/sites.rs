//! Several sites on one server: the Host header picks the site, and codes,
//! members, invitations and mail belong to one site only.

use reqwest::StatusCode;

use crate::backend_tests;
use crate::helpers::{
    Backend, TestApp, assert_form_error, assert_redirects_to, code_in_mail, code_on_page,
    spawn_app, spawn_app_with,
};

const CLUB: &str = "club.test";

/// An app with a second site, `club.test` ("Tango Club").
async fn two_site_app(backend: Backend) -> Option<TestApp> {
    let app = spawn_app(backend).await?;
    gatehouse::web::sites::add(app.db(), CLUB, "Tango Club")
        .await
        .expect("site added");
    app.state.sites.refresh().await.expect("refreshed");
    Some(app)
}

async fn the_host_header_picks_the_site_and_unknown_hosts_get_the_default(backend: Backend) {
    let Some(app) = two_site_app(backend).await else {
        return;
    };
    let club = app.new_browser().on_host(&format!("{CLUB}:8080"));
    assert!(club.get_html("/").await.contains("Welcome to Tango Club"));
    let unknown = app.new_browser().on_host("unknown.example");
    assert!(unknown.get_html("/").await.contains("Welcome to Gatehouse"));
    assert!(app.get_html("/").await.contains("Welcome to Gatehouse"));
}

async fn a_code_works_only_on_its_own_site(backend: Backend) {
    let Some(app) = two_site_app(backend).await else {
        return;
    };
    // Tango Club's staff member invites someone from Tango Club's pages.
    let club_site = app
        .state
        .sites
        .by_domain(CLUB)
        .await
        .expect("the club site");
    let hash = app
        .state
        .hasher
        .hash(&gatehouse::settings::Secret::new("a long staff password"))
        .await
        .expect("hash");
    gatehouse::accounts::users::create(
        app.db(),
        gatehouse::accounts::users::NewUser {
            site_id: club_site.id,
            username: "clubboss".into(),
            email: gatehouse::email_address::EmailAddress::parse("boss@club.test").expect("email"),
            first_name: "Carmen".into(),
            last_name: "Miranda".into(),
            password_hash: Some(hash),
            is_staff: true,
        },
    )
    .await
    .expect("club staff");
    let club_staff = app.new_browser().on_host(CLUB);
    assert_redirects_to(
        &club_staff
            .login_with_password("clubboss", "a long staff password")
            .await,
        "/",
    );
    let response = club_staff
        .post_form(
            "/invites/send",
            &[("email", "fred@example.org"), ("name", "Fred Astaire")],
        )
        .await;
    assert_redirects_to(&response, "/invites/sent");
    let club_code = code_on_page(&club_staff.get_html("/invites/sent").await);

    // The mail is the club's: its name, and a link to its own host.
    let parsed = app.smtp.wait_for(1).await[0].parsed();
    assert_eq!(parsed.subject, "Your invitation to Tango Club");
    assert_eq!(parsed.from_name, "Tango Club");
    assert!(parsed.text.contains("Carmen Miranda has invited you"));
    assert!(parsed.text.contains(&format!(
        "http://{CLUB}:8080/accounts/login?code={club_code}"
    )));
    assert_eq!(code_in_mail(&parsed.text), club_code);

    // The same address invited on the default site gets a separate invite.
    let main_code = app.invite("fred@example.org", "Fred Astaire").await;

    // Each code works on its own site only.
    let on_main = app.new_browser();
    assert_form_error(
        on_main.login_with_code(&club_code).await,
        "That code is not valid.",
    )
    .await;
    let on_club = app.new_browser().on_host(CLUB);
    assert_form_error(
        on_club.login_with_code(&main_code).await,
        "That code is not valid.",
    )
    .await;
    assert_redirects_to(&on_club.login_with_code(&club_code).await, "/");
    assert_redirects_to(&on_main.login_with_code(&main_code).await, "/");
    assert_eq!(
        app.scalar("SELECT COUNT(*) FROM users WHERE email = 'fred@example.org'")
            .await,
        2,
        "one member per site"
    );

    // A session of one site means nothing on another.
    assert_eq!(on_club.whoami().await.as_deref(), Some("fred@example.org"));
    let same_jar_other_host = crate::helpers::Browser {
        address: on_club.address.clone(),
        client: on_club.client.clone(),
        jar: on_club.jar.clone(),
        host: Some("unknown.example".into()),
    };
    assert_eq!(same_jar_other_host.whoami().await, None);

    // Staff see only their own site's invitations and mail.
    let club_list = club_staff.get_html("/staff/invites").await;
    assert_eq!(club_list.matches("<tr id=\"invite-").count(), 1);
    let main_staff = app.new_browser();
    app.create_user("boss", "boss@example.org", "a long staff password", true)
        .await;
    main_staff
        .login_with_password("boss", "a long staff password")
        .await;
    let main_mail = main_staff.get_html("/staff/mail?show=all").await;
    assert!(!main_mail.contains("fred@example.org"), "{main_mail}");
    let club_invite_id = app
        .scalar(&format!(
            "SELECT id FROM invites WHERE site_id = {}",
            club_site.id
        ))
        .await;
    let response = main_staff
        .post_form(
            &format!("/staff/invites/{club_invite_id}/revoke"),
            &[("confirm", "yes")],
        )
        .await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}

/// `GET /` from this test's client (peer 127.0.0.1) with `headers`: which
/// site's home page answered.
async fn site_answering(app: &TestApp, headers: &[(&str, &str)]) -> &'static str {
    let mut request = app.client.get(app.url("/"));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.expect("GET");
    assert_eq!(response.status(), StatusCode::OK);
    let html = response.text().await.expect("body");
    if html.contains("Welcome to Tango Club") {
        "club"
    } else if html.contains("Welcome to Gatehouse") {
        "default"
    } else {
        panic!("no welcome in {html}")
    }
}

async fn forwarded_hosts_from_untrusted_peers_do_not_choose_the_site(backend: Backend) {
    let Some(app) = two_site_app(backend).await else {
        return;
    };
    assert!(app.state.settings.server.trusted_proxies.is_empty());
    let club_host = format!("{CLUB}:8080");
    for forged in [
        ("X-Forwarded-Host", CLUB),
        ("Forwarded", "host=club.test"),
        (
            "Forwarded",
            "for=192.0.2.1;proto=https;host=\"club.test:443\"",
        ),
    ] {
        assert_eq!(
            site_answering(&app, &[forged]).await,
            "default",
            "{forged:?}"
        );
        // Nor can they move a request for the club to the default site.
        let other = if forged.0 == "Forwarded" {
            ("Forwarded", "host=127.0.0.1")
        } else {
            ("X-Forwarded-Host", "127.0.0.1")
        };
        assert_eq!(
            site_answering(&app, &[("Host", &club_host), other]).await,
            "club",
            "{other:?}"
        );
    }
    assert_eq!(site_answering(&app, &[("Host", &club_host)]).await, "club");
}

async fn forwarded_hosts_from_trusted_proxies_choose_the_site(backend: Backend) {
    let Some(app) = spawn_app_with(backend, |settings| {
        settings.server.trusted_proxies = vec!["127.0.0.1".parse().expect("ip")];
    })
    .await
    else {
        return;
    };
    gatehouse::web::sites::add(app.db(), CLUB, "Tango Club")
        .await
        .expect("site added");
    app.state.sites.refresh().await.expect("refreshed");
    assert_eq!(
        site_answering(&app, &[("X-Forwarded-Host", CLUB)]).await,
        "club"
    );
    assert_eq!(
        site_answering(
            &app,
            &[("Forwarded", "for=192.0.2.1;host=\"club.test:8443\"")]
        )
        .await,
        "club"
    );
    // The value the proxy appended counts, not one the client sent ahead of it.
    assert_eq!(
        site_answering(&app, &[("X-Forwarded-Host", "club.test, 127.0.0.1")]).await,
        "default"
    );
    // Without a forwarded host, the Host header still decides.
    assert_eq!(site_answering(&app, &[]).await, "default");
    assert_eq!(site_answering(&app, &[("Host", CLUB)]).await, "club");
}

backend_tests!(
    the_host_header_picks_the_site_and_unknown_hosts_get_the_default,
    a_code_works_only_on_its_own_site,
    forwarded_hosts_from_untrusted_peers_do_not_choose_the_site,
    forwarded_hosts_from_trusted_proxies_choose_the_site,
);
