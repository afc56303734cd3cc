//! A self-hosted, accessible captcha: a small sum in words a screen reader
//! reads out ("What is 7 plus 4?"). The challenge (answer and a random
//! nonce) stays in the session, which for an anonymous visitor is an
//! encrypted cookie (see `sessions`): it is taken out by the first check,
//! right or wrong, and its nonce is spent on the attempt it let through, so
//! a copy of an old cookie cannot answer twice.

use rand::RngExt;
use serde::{Deserialize, Serialize};

use crate::secrets::os_rng;

/// What the session keeps of a question: its answer and a nonce.
#[derive(Debug, Serialize, Deserialize)]
pub struct Challenge {
    answer: u32,
    nonce: String,
}

/// A new question and its challenge, which the caller keeps in the session
/// (replacing any earlier one).
pub fn new_question() -> (String, Challenge) {
    let mut rng = os_rng();
    let (a, b): (u32, u32) = (rng.random_range(2..=9), rng.random_range(2..=9));
    let nonce: [u8; 16] = rng.random();
    let challenge = Challenge {
        answer: a + b,
        nonce: hex::encode(nonce),
    };
    (format!("What is {a} plus {b}?"), challenge)
}

/// How an answer met the session's challenge.
#[derive(Debug, PartialEq, Eq)]
pub enum Answer {
    /// No question was asked in this session (or it was already used).
    NoQuestion,
    /// The field was left empty (nothing was tried, nothing to spend).
    Missing,
    /// Right; the challenge's nonce is to be spent on the attempt.
    Right(String),
    /// Wrong; the nonce is spent all the same, so that a copy of the cookie
    /// cannot try the other answers.
    Wrong(String),
}

/// Checks `answer` against the challenge taken out of the session (one
/// check per question: the caller removes it either way).
pub fn check(challenge: Option<Challenge>, answer: &str) -> Answer {
    let Some(challenge) = challenge else {
        return Answer::NoQuestion;
    };
    if answer.trim().is_empty() {
        return Answer::Missing;
    }
    match answer.trim().parse::<u32>() {
        Ok(given) if given == challenge.answer => Answer::Right(challenge.nonce),
        _ => Answer::Wrong(challenge.nonce),
    }
}
