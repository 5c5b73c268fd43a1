//! `shoal server` end to end: the REST API under /api/v1 over real HTTP on 127.0.0.1,
//! a real server process per database (SQLite file, then a fresh PostgreSQL database),
//! real shell tasks, a real webhook receiver and SMTP server for alerts, and the testkit
//! component uploaded into the running server.
//!
//! Each test starts one server per database and runs several groups of checks against
//! it, concurrently where they wait on running tasks, in projects of their own.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::path::Path;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};
use shoal_tests::server::{
    Client, FINISHED, Hook, Mail, Reply, Server, eventually, instance, settle, smtp_receiver,
    wait_state, webhook_receiver,
};
use tokio::sync::mpsc;

const ADMIN: &str = "shoal-admin-token-for-tests";
const DAY_MS: i64 = 86_400_000;
/// 2024-01-01T00:00:00Z.
const JAN_1_2024: i64 = 1_704_067_200_000;

mod alerts;
mod api;
mod definitions;
mod errors;
mod harness;
mod logs;
mod permissions;
mod plugins;
mod scheduling;

use alerts::*;
use api::*;
use definitions::*;
use errors::*;
use harness::*;
use permissions::*;
