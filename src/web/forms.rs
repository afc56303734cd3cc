//! Small helpers shared by every form: field errors keyed by field name, and
//! limits on what a text field may hold.

use std::collections::BTreeMap;

use serde::Serialize;

/// Messages to show next to fields (and `form` for the form as a whole).
#[derive(Debug, Default, Serialize)]
pub struct FormErrors(BTreeMap<&'static str, String>);

impl FormErrors {
    pub fn add(&mut self, field: &'static str, message: impl Into<String>) {
        self.0.entry(field).or_insert_with(|| message.into());
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn get(&self, field: &str) -> Option<&str> {
        self.0.get(field).map(String::as_str)
    }

    /// (field, message) pairs, for places without a form (the command line).
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &str)> {
        self.0
            .iter()
            .map(|(field, message)| (*field, message.as_str()))
    }
}

/// Checks a free-text field's length in characters.
pub fn check_length(
    errors: &mut FormErrors,
    field: &'static str,
    label: &str,
    value: &str,
    max: usize,
) {
    if value.chars().count() > max {
        errors.add(field, format!("{label} can be {max} characters at most."));
    }
}
