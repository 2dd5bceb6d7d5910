//! How much one request may contain.

/// Bounds on what one request may contain (the body size itself is bounded before parsing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EnvelopeLimits {
    /// Top-level fields in the body.
    pub max_fields: usize,
    /// Entries in `messages`.
    pub max_messages: usize,
    /// Entries in `prompt` / `input` when they are arrays.
    pub max_inputs: usize,
    /// Nesting of arrays and objects anywhere in the body (the top-level object is depth 1).
    pub max_depth: usize,
}

impl Default for EnvelopeLimits {
    fn default() -> Self {
        Self {
            max_fields: 128,
            max_messages: 4096,
            max_inputs: 2048,
            max_depth: 64,
        }
    }
}
