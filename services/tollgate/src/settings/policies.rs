//! The failure policies settings name: what admission and budgets do when Redis cannot be reached.
//! They are configuration values, so they live with the configuration; [`crate::admission`] and
//! [`crate::budget`] act on them.

/// What to do when Redis is unreachable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FailurePolicy {
    Local,
    Allow,
    Deny,
}

/// What to do with a priced request when Redis cannot be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BudgetFailure {
    /// Refuse it (503): two replicas counting alone could together overshoot a budget.
    #[default]
    Deny,
    /// Hold against this replica's own meters (loaded from the store): keeps serving, but with
    /// several replicas a budget can be overshot while Redis is down.
    Local,
}
