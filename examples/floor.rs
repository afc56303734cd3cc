//! The benchmarks' floor: bare actix-web + Tera rendering Gatehouse's base
//! page, with no database, session or middleware. `bench/hot-path.sh` runs it
//! beside Gatehouse and quotes every figure as a share of it.
//!
//! Prints `floor=PORT` once it listens.

use actix_web::{App, HttpResponse, HttpServer, web};

const FLOOR_TEMPLATE: &str = include_str!("../templates/base.html");

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let mut tera = tera::Tera::default();
    tera.add_raw_template("page.html", FLOOR_TEMPLATE)?;
    tera.register_function("static_url", gatehouse::render::static_url_function());
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
    println!("floor={}", floor.addrs()[0].port());
    floor.run().await?;
    Ok(())
}
