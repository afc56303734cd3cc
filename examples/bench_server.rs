//! Servers for `bench/visitors.sh`, started together so that one run
//! measures them side by side:
//! - Gatehouse itself (release settings, SQLite), plus `/bench/unguarded`:
//!   the visitor demo page's template rendered without guard or visitor;
//! - the "floor": bare actix-web + Tera rendering a page of the same size.
//!
//! Prints `gatehouse=PORT floor=PORT` once both listen.

use actix_web::{App, HttpResponse, HttpServer, web};
use gatehouse::settings::Settings;
use gatehouse::web::page::Page;

async fn unguarded(page: Page) -> Result<HttpResponse, gatehouse::error::AppError> {
    let mut context = tera::Context::new();
    context.insert("is_member", &false);
    page.render("visitors/demo.html", context)
}

const FLOOR_TEMPLATE: &str = include_str!("../templates/base.html");

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::load()?;
    let app = gatehouse::Application::build_with(settings, |cfg| {
        cfg.route("/bench/unguarded", web::get().to(unguarded));
    })
    .await?;
    let gatehouse_port = app.port();

    let mut tera = tera::Tera::default();
    tera.add_raw_template("page.html", FLOOR_TEMPLATE)?;
    let tera = web::Data::new(tera);
    let floor = HttpServer::new(move || {
        App::new().app_data(tera.clone()).route(
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
    })
    .bind("127.0.0.1:0")?;
    let floor_port = floor.addrs()[0].port();
    println!("gatehouse={gatehouse_port} floor={floor_port}");
    let floor = floor.run();
    tokio::try_join!(app.run_until_stopped(), floor)?;
    Ok(())
}
