//! Tera templates (embedded in release builds, read from `templates/` in debug
//! builds) and the formats pages share. Knows no request: `web::page` adds
//! what every page needs.

use std::collections::HashMap;
use std::sync::OnceLock;

use tera::Tera;

#[derive(rust_embed::Embed)]
#[folder = "templates/"]
struct TemplateFiles;

/// The files of `static/`, embedded in release builds.
#[derive(rust_embed::Embed)]
#[folder = "static/"]
pub struct StaticFiles;

/// The first hex digits of a static file's SHA-256: its fingerprint.
pub fn fingerprint(file: &rust_embed::EmbeddedFile) -> String {
    hex::encode(&file.metadata.sha256_hash()[..6])
}

/// `gatehouse.css` → `/static/gatehouse.<fingerprint>.css`: a name that
/// changes with the content, so browsers may keep it for good.
pub fn static_url(name: &str) -> Option<String> {
    let file = StaticFiles::get(name)?;
    let (stem, extension) = name.rsplit_once('.')?;
    Some(format!("/static/{stem}.{}.{extension}", fingerprint(&file)))
}

/// The file a fingerprinted name stands for, and the fingerprint it asks
/// for: `gatehouse.0a1b2c3d4e5f.css` → (`gatehouse.css`, `0a1b2c3d4e5f`).
pub fn unfingerprinted(name: &str) -> Option<(String, &str)> {
    let (rest, extension) = name.rsplit_once('.')?;
    let (stem, print) = rest.rsplit_once('.')?;
    let is_print = print.len() == 12 && print.bytes().all(|b| b.is_ascii_hexdigit());
    is_print.then(|| (format!("{stem}.{extension}"), print))
}

/// The Tera function `static_url(name="gatehouse.css")`. In release builds
/// the files cannot change, so each URL is worked out once.
pub fn static_url_function() -> impl tera::Function {
    static URLS: OnceLock<HashMap<String, String>> = OnceLock::new();
    |args: &HashMap<String, tera::Value>| {
        let name = args
            .get("name")
            .and_then(tera::Value::as_str)
            .ok_or_else(|| tera::Error::msg("static_url needs name=\"file\""))?;
        let url = if cfg!(debug_assertions) {
            static_url(name)
        } else {
            URLS.get_or_init(|| {
                StaticFiles::iter()
                    .filter_map(|file| Some((file.to_string(), static_url(&file)?)))
                    .collect()
            })
            .get(name)
            .cloned()
        };
        url.map(tera::Value::String)
            .ok_or_else(|| tera::Error::msg(format!("no static file {name}")))
    }
}

/// Whether `template` (or a template it includes) has a form, and so needs
/// the CSRF token. (`base.html`'s logout form is shown to members only; the
/// page adds the token for them.)
pub fn has_form(template: &str) -> bool {
    static WITH_FORMS: OnceLock<std::collections::HashSet<String>> = OnceLock::new();
    WITH_FORMS
        .get_or_init(|| {
            let sources: HashMap<String, String> = TemplateFiles::iter()
                .filter(|name| name != "base.html")
                .filter_map(|name| {
                    let file = TemplateFiles::get(&name)?;
                    Some((
                        name.into_owned(),
                        String::from_utf8(file.data.into_owned()).ok()?,
                    ))
                })
                .collect();
            let mentions = |source: &str| source.contains("csrf_token");
            sources
                .iter()
                .filter(|(_, source)| {
                    mentions(source)
                        || source.split("{% include \"").skip(1).any(|rest| {
                            let included = rest.split('"').next().unwrap_or_default();
                            sources.get(included).is_some_and(|source| mentions(source))
                        })
                })
                .map(|(name, _)| name.clone())
                .collect()
        })
        .contains(template)
}

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
    tera.register_function("static_url", static_url_function());
    Ok(tera)
}
