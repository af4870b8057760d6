//! What a check ends with.

/// Why a check did not pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The deployment does not do what the contract says: what was expected, what came, and
    /// what to look at.
    Fail(String),
    /// The check could not run here (a missing output, an opt-in not given).
    Skip(String),
}

pub type Outcome = Result<(), Verdict>;

pub fn fail(message: impl Into<String>) -> Verdict {
    Verdict::Fail(message.into())
}

pub fn skip(reason: impl Into<String>) -> Verdict {
    Verdict::Skip(reason.into())
}
