//! An invoice's life after it is finalized, and the ledger postings of each step.
//!
//! Finalizing moves the invoice's exact total from the tenant's unbilled receivable to its billed
//! receivable (`invoice:<id>:bill`), and the rounding residue between billed and
//! `platform:rounding` (`invoice:<id>:rounding`), so that the billed receivable is exactly the
//! amount due in cents. Then:
//!
//! | step | from | postings |
//! |---|---|---|
//! | pay | open, uncollectible | `invoice:<id>:payment` (cash → billed, the amount due); from uncollectible the write-off is reversed first |
//! | void | open, uncollectible | the rounding and any write-off reversed, then `invoice:<id>:void` (revenue → billed, the exact total): the charge is cancelled |
//! | mark uncollectible | open | `invoice:<id>:writeoff` (bad debt → billed, the amount due) |
//!
//! Repeating a step that already happened changes nothing; any other step is refused.

use crate::invoice::NANOS_PER_CENT;
use crate::ledger::{Account, Posting};
use crate::money::Nanos;

/// Where an invoice stands. A draft is never stored: it is the open period's invoice, computed on
/// read.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InvoiceStatus {
    Draft,
    Open,
    Paid,
    Void,
    Uncollectible,
}

impl InvoiceStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Draft => "draft",
            Self::Open => "open",
            Self::Paid => "paid",
            Self::Void => "void",
            Self::Uncollectible => "uncollectible",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "draft" => Some(Self::Draft),
            "open" => Some(Self::Open),
            "paid" => Some(Self::Paid),
            "void" => Some(Self::Void),
            "uncollectible" => Some(Self::Uncollectible),
            _ => None,
        }
    }
}

/// A step in a finalized invoice's life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Pay,
    Void,
    MarkUncollectible,
}

impl Step {
    /// The status the step leads to.
    pub fn target(self) -> InvoiceStatus {
        match self {
            Self::Pay => InvoiceStatus::Paid,
            Self::Void => InvoiceStatus::Void,
            Self::MarkUncollectible => InvoiceStatus::Uncollectible,
        }
    }
}

/// Why a step cannot be taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("an invoice that is {from} cannot become {to}")]
pub struct StepError {
    pub from: &'static str,
    pub to: &'static str,
}

/// What a step does: nothing (it already happened), or these postings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transition {
    AlreadyDone,
    Post(Vec<Posting>),
}

/// The money of a finalized invoice that its postings move.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Billed<'a> {
    pub invoice_id: &'a str,
    pub tenant_id: &'a str,
    /// Σ lines, exact.
    pub total: Nanos,
    /// Σ lines' cents: the amount due.
    pub total_cents: i64,
}

impl Billed<'_> {
    fn due(&self) -> Option<i64> {
        self.total_cents.checked_mul(NANOS_PER_CENT)
    }

    fn billed(&self) -> Account {
        Account::TenantBilled(self.tenant_id.to_owned())
    }

    fn key(&self, what: &str) -> String {
        format!("invoice:{}:{what}", self.invoice_id)
    }

    /// The postings of finalizing: the bill and the rounding. `None` on overflow.
    pub fn finalize(&self) -> Option<Vec<Posting>> {
        let residue = self.total.0.checked_sub(self.due()?)?;
        let receivable = Account::TenantReceivable(self.tenant_id.to_owned());
        Some(
            [
                flow(self.key("bill"), self.billed(), receivable, self.total.0)?,
                flow(
                    self.key("rounding"),
                    Account::Rounding,
                    self.billed(),
                    residue,
                )?,
            ]
            .into_iter()
            .flatten()
            .collect(),
        )
    }

    /// What taking `step` from `from` does. `None` on overflow.
    pub fn step(&self, from: InvoiceStatus, step: Step) -> Option<Result<Transition, StepError>> {
        use InvoiceStatus as S;
        let refused = || {
            Err(StepError {
                from: from.as_str(),
                to: step.target().as_str(),
            })
        };
        if from == step.target() {
            return Some(Ok(Transition::AlreadyDone));
        }
        let due = self.due()?;
        let writeoff = flow(self.key("writeoff"), Account::BadDebt, self.billed(), due)?;
        let mut out = Vec::new();
        match (from, step) {
            (S::Open | S::Uncollectible, Step::Pay) => {
                if from == S::Uncollectible {
                    out.extend(writeoff.map(reverse));
                }
                out.extend(flow(
                    self.key("payment"),
                    Account::Cash,
                    self.billed(),
                    due,
                )?);
            }
            (S::Open | S::Uncollectible, Step::Void) => {
                if from == S::Uncollectible {
                    out.extend(writeoff.map(reverse));
                }
                let finalized = self.finalize()?;
                out.extend(
                    finalized
                        .into_iter()
                        .filter(|p| p.key.ends_with(":rounding"))
                        .map(reverse),
                );
                out.extend(flow(
                    self.key("void"),
                    Account::Revenue,
                    self.billed(),
                    self.total.0,
                )?);
            }
            (S::Open, Step::MarkUncollectible) => out.extend(writeoff),
            _ => return Some(refused()),
        }
        Some(Ok(Transition::Post(out)))
    }
}

/// A posting of `amount` from `debit` to `credit` (the other way when negative): `Some(None)`
/// for zero, `None` if the amount has no magnitude in `i64` (`i64::MIN`).
fn flow(key: String, debit: Account, credit: Account, amount: i64) -> Option<Option<Posting>> {
    let (debit, credit) = if amount < 0 {
        (credit, debit)
    } else {
        (debit, credit)
    };
    let magnitude = amount.checked_abs()?;
    Some((amount != 0).then_some(Posting {
        key,
        debit,
        credit,
        amount: Nanos(magnitude),
    }))
}

/// The reversing posting of `p` (`reverse:<key>`).
fn reverse(p: Posting) -> Posting {
    Posting {
        key: format!("reverse:{}", p.key),
        debit: p.credit,
        credit: p.debit,
        amount: p.amount,
    }
}
