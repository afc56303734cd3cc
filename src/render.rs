//! Tera templates (embedded in release builds, read from `templates/` in debug
//! builds) and the formats pages share. Knows no request: `web::page` adds
//! what every page needs.

use tera::Tera;

#[derive(rust_embed::Embed)]
#[folder = "templates/"]
struct TemplateFiles;

/// Loads every template. Names ending in `.html` are autoescaped.
pub fn load() -> Result<Tera, tera::Error> {
    let mut tera = Tera::default();
    let mut files = Vec::new();
    for name in TemplateFiles::iter() {
        let file = TemplateFiles::get(&name).expect("listed files exist");
        let text = String::from_utf8(file.data.into_owned())
            .map_err(|_| tera::Error::msg(format!("template {name} is not UTF-8")))?;
        files.push((name.into_owned(), text));
    }
    tera.add_raw_templates(files)?;
    Ok(tera)
}
