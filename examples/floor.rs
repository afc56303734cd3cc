//! The benchmarks' floor: bare actix-web + Tera rendering Gatehouse's base
//! page, with no database, session or middleware. `bench/hot-path.sh` runs it
//! beside Gatehouse and quotes every figure as a share of it.
//!
//! `POST /login` is the floor for password logins: the same form, checked
//! with Gatehouse's own hasher (its threads, its argon2 costs) against one
//! stored hash, and answered with a redirect. It is what argon2 allows once
//! each login also travels over HTTP, with the load generator on the same
//! cores.
//!
//! Prints `floor=PORT` once it listens.

use actix_web::{App, HttpResponse, HttpServer, http::header, web};
use gatehouse::accounts::passwords::PasswordHasher;
use gatehouse::settings::{Secret, Settings};

const FLOOR_TEMPLATE: &str = include_str!("../templates/base.html");

/// The password every floor login uses (the bench's members' password).
const PASSWORD: &str = "correct horse battery";

#[derive(serde::Deserialize)]
struct LoginForm {
    password: String,
}

struct Login {
    hasher: PasswordHasher,
    stored: String,
}

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let mut tera = tera::Tera::default();
    tera.add_raw_template("page.html", FLOOR_TEMPLATE)?;
    tera.register_function("static_url", gatehouse::render::static_url_function());
    let tera = web::Data::new(tera);
    let hasher = PasswordHasher::new(&Settings::load()?.passwords)?;
    let stored = hasher.hash(&Secret::new(PASSWORD)).await?;
    let login = web::Data::new(Login { hasher, stored });
    let floor = HttpServer::new(move || {
        App::new()
            .app_data(tera.clone())
            .app_data(login.clone())
            .route(
                "/",
                web::get().to(|tera: web::Data<tera::Tera>| async move {
                    let mut context = tera::Context::new();
                    context.insert("site", &serde_json::json!({ "name": "Gatehouse" }));
                    context.insert("flashes", &Vec::<String>::new());
                    context.insert("current_path", "/");
                    context.insert("csrf_token", "");
                    match tera.render("page.html", &context) {
                        Ok(html) => HttpResponse::Ok().content_type("text/html").body(html),
                        Err(err) => HttpResponse::InternalServerError().body(err.to_string()),
                    }
                }),
            )
            .route(
                "/login",
                web::post().to(
                    |login: web::Data<Login>, form: web::Form<LoginForm>| async move {
                        let password = Secret::new(form.password.as_str());
                        if login.hasher.verify(&password, Some(&login.stored)).await {
                            HttpResponse::SeeOther()
                                .insert_header((header::LOCATION, "/"))
                                .finish()
                        } else {
                            HttpResponse::Ok().body("wrong password")
                        }
                    },
                ),
            )
    })
    .bind("127.0.0.1:0")?;
    println!("floor={}", floor.addrs()[0].port());
    floor.run().await?;
    Ok(())
}
