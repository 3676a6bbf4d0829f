//! The handlers, one module per area of Finout's API.

pub(crate) mod admin;
pub(crate) mod costguard;
pub(crate) mod endpoints;
pub(crate) mod keys;
pub(crate) mod tags;
pub(crate) mod v2;
pub(crate) mod views;
