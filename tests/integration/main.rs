//! Integration tests: the real app on a random port, real HTTP, a fresh
//! database per test. Each case in a `backend_tests!` list runs on SQLite and
//! on PostgreSQL (a throwaway cluster started by the tests).

mod helpers;
mod support {
    pub mod browser;
    pub mod burst;
    pub mod postgres;
    pub mod smtp;
}

mod accessibility;
mod accounts;
mod browser;
mod cli;
mod csrf;
mod dashboard;
mod django_import;
mod fuzz;
mod invites;
mod logs;
mod mail;
mod members;
mod own_data;
mod pages;
mod references;
mod reset;
mod retention;
mod security;
mod sessions;
mod sites;
mod staff_invites;
mod staff_visitors;
mod time_zone;
mod visitor_passes;
mod visitors;
