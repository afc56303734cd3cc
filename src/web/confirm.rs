//! Confirmations for actions that cannot be undone (revoke, resend, cancel,
//! send again, deactivate): the POST without `confirm=yes` does nothing and
//! answers with a page naming who is affected and how; its button posts the
//! same form again with `confirm=yes`.

use actix_web::HttpResponse;
use serde::{Deserialize, Serialize};
use tera::Context;

use super::page::Page;
use crate::error::AppResult;

/// The `confirm` field of a destructive form.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ConfirmForm {
    pub confirm: String,
    /// Where a list sends the person back to (kept through the question).
    pub back: String,
}

impl ConfirmForm {
    pub fn confirmed(&self) -> bool {
        self.confirm == "yes"
    }
}

/// The question.
#[derive(Debug, Serialize)]
pub struct Question {
    /// "Revoke the invitation for fred@example.org?"
    pub title: String,
    /// What happens, in the words of the person affected.
    pub effect: String,
    /// Where the confirmed form goes.
    pub action: String,
    /// "Revoke the invitation"
    pub yes: String,
    /// "Keep it"
    pub no: String,
    /// Where "no" leads.
    pub back: String,
    /// Fields of the original form the confirmed one must send again.
    pub resend: Vec<FormField>,
}

/// A hidden field of the confirmed form.
#[derive(Debug, Serialize)]
pub struct FormField {
    pub name: &'static str,
    pub value: String,
}

pub fn ask(page: &Page, question: &Question) -> AppResult<HttpResponse> {
    let mut context = Context::new();
    context.insert("question", question);
    page.render("confirm.html", context)
}
