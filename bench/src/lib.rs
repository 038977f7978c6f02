//! isola-bench: the comparative harness. Today it measures startup against
//! the peers installed on the host; the full report arrives with the
//! benchmark issue.

pub mod bundle;
pub mod corpus;
pub mod startup;
