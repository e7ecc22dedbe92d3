//! Verification of one user: the v2 tree against v1 as it is now (the user planned again,
//! merge rules applied), file by file by SHA-256, graded like Exchange's data consistency
//! score:
//!
//! - **Perfect**: every file there with v1's bytes, nothing else, and the export had no
//!   problem for this user;
//! - **Investigate**: some files differ, or are extra, but no more than
//!   [`INVESTIGATE_AT_MOST`] (or 10% of the tree, if more), or the export had problems;
//! - **Poor**: a file is missing, or more differ than that.
//!
//! Investigate and Poor need an explicit approval before a cutover.

use serde::Serialize;

use std::collections::BTreeMap;

use crate::destination::Destination;
use crate::error::MigrateError;
use crate::export::V1Export;
use crate::plan::{UserPlan, plan_user};
use crate::spec::Migration;

/// Files that may differ before a user is Poor rather than Investigate (or 10% of the
/// tree, if more).
pub const INVESTIGATE_AT_MOST: usize = 5;

/// How well a user's v2 copy matches v1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
pub enum Grade {
    /// Everything matches.
    Perfect,
    /// A few differences, or problems in the export: look before cutting over.
    Investigate,
    /// Missing files, or many differences.
    Poor,
}

/// What verification found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Verification {
    /// The grade.
    pub grade: Grade,
    /// Files compared.
    pub checked: usize,
    /// Paths whose bytes differ from v1's.
    pub differ: Vec<String>,
    /// Paths v1 has and v2 lacks.
    pub missing: Vec<String>,
    /// Paths v2 has and v1 does not.
    pub extra: Vec<String>,
    /// Why the grade is not Perfect, in words.
    pub reasons: Vec<String>,
}

/// Verifies the copy of `user` in `dest` against the export as it is now.
///
/// # Errors
/// The export did not answer.
pub async fn verify(
    export: &V1Export,
    migration: &Migration,
    user: &crate::export::V1User,
    dest: &impl Destination,
) -> Result<Verification, MigrateError> {
    let now = plan_user(export, migration, user).await?;
    Ok(compare(&now, &dest.hashes().await?))
}

/// Compares what v2 holds (`hashes`: SHA-256 by path) with what `plan` expects.
pub fn compare(plan: &UserPlan, hashes: &BTreeMap<String, String>) -> Verification {
    let mut differ = Vec::new();
    let mut missing = Vec::new();
    for (path, placed) in &plan.merged.files {
        match hashes.get(path) {
            None => missing.push(path.clone()),
            Some(sha) if *sha != placed.sha256 => differ.push(path.clone()),
            Some(_) => {}
        }
    }
    let extra: Vec<String> = hashes
        .keys()
        .filter(|p| !plan.merged.files.contains_key(*p))
        .cloned()
        .collect();
    let mut reasons = Vec::new();
    if !missing.is_empty() {
        reasons.push(format!(
            "{} file(s) missing in v2: {}",
            missing.len(),
            missing.join(", ")
        ));
    }
    if !differ.is_empty() {
        reasons.push(format!(
            "{} file(s) differ from v1: {}",
            differ.len(),
            differ.join(", ")
        ));
    }
    if !extra.is_empty() {
        reasons.push(format!(
            "{} file(s) only in v2: {}",
            extra.len(),
            extra.join(", ")
        ));
    }
    for p in &plan.problems {
        reasons.push(format!("the export: {p}"));
    }
    let allowed = INVESTIGATE_AT_MOST.max(plan.merged.files.len() / 10);
    let grade = if !missing.is_empty() || differ.len() + extra.len() > allowed {
        Grade::Poor
    } else if reasons.is_empty() {
        Grade::Perfect
    } else {
        Grade::Investigate
    };
    Verification {
        grade,
        checked: plan.merged.files.len(),
        differ,
        missing,
        extra,
        reasons,
    }
}
