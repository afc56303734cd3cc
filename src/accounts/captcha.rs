//! A self-hosted, accessible captcha: a small sum in words a screen reader
//! reads out ("What is 7 plus 4?"). The answer stays in the session and is
//! used up by the first check, right or wrong.

use actix_session::Session;
use rand::RngExt;

use crate::secrets::os_rng;

const ANSWER_KEY: &str = "captcha:answer";

/// A new question; its answer replaces any earlier one in the session.
pub fn new_question(session: &Session) -> String {
    let mut rng = os_rng();
    let (a, b): (u32, u32) = (rng.random_range(2..=9), rng.random_range(2..=9));
    if let Err(err) = session.insert(ANSWER_KEY, a + b) {
        log::warn!("Could not store a captcha answer: {err}");
    }
    format!("What is {a} plus {b}?")
}

/// True when `answer` matches the session's stored answer, which is removed
/// either way (single use).
pub fn check(session: &Session, answer: &str) -> bool {
    let expected = session.get::<u32>(ANSWER_KEY).ok().flatten();
    if expected.is_some() {
        session.remove(ANSWER_KEY);
    }
    let given = answer.trim().parse::<u32>().ok();
    matches!((expected, given), (Some(expected), Some(given)) if expected == given)
}
