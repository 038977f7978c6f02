//! How a resource is named in an error: config.json's field at `create`,
//! the update's at `update`; shared by the checks and the device rules.

use std::fmt::Display;

/// How a refusal names the field: in config.json, or in the resources
/// `update` was given.
#[derive(Debug, Clone, Copy)]
pub(super) struct Fields(&'static str);

pub(super) const CONFIG: Fields = Fields("config.json's linux.resources.");
pub(super) const UPDATE: Fields = Fields("the update's ");

impl Fields {
    pub fn at(&self, rest: impl Display) -> String {
        format!("{}{rest}", self.0)
    }
}
