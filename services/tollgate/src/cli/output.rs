//! How operator commands end: JSON on stdout, a message on stderr, and the exit code.

use std::process::ExitCode;

use crate::tenancy::TenancyError;

/// Why an operator command failed, and so its exit code.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// The command cannot be done as asked (exit 2): a bad value, a missing tenant.
    #[error("{0}")]
    Usage(String),
    /// Something failed while doing it (exit 1): the database, the OS.
    #[error("{0}")]
    Runtime(String),
    /// The command did its work and found what the operator must look at (exit 3): differences
    /// in a reconciliation.
    #[error("{0}")]
    Found(String),
}

impl From<TenancyError> for Failure {
    fn from(e: TenancyError) -> Self {
        match e {
            TenancyError::NotFound(_) | TenancyError::Conflict(_) | TenancyError::Invalid(_) => {
                Failure::Usage(e.to_string())
            }
            _ => Failure::Runtime(e.to_string()),
        }
    }
}

impl From<tollgate_store::StoreError> for Failure {
    fn from(e: tollgate_store::StoreError) -> Self {
        Failure::Runtime(e.to_string())
    }
}

impl Failure {
    pub fn exit(&self) -> ExitCode {
        eprintln!("error: {self}");
        match self {
            Failure::Usage(_) => {
                eprintln!("\nRun `tollgate help` for usage.");
                ExitCode::from(2)
            }
            Failure::Runtime(_) => ExitCode::from(1),
            Failure::Found(_) => ExitCode::from(3),
        }
    }
}

/// Prints a command's result as pretty JSON.
pub fn print(value: &impl serde::Serialize) -> Result<(), Failure> {
    let text = serde_json::to_string_pretty(value).map_err(|e| Failure::Runtime(e.to_string()))?;
    println!("{text}");
    Ok(())
}
