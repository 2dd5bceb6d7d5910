#![allow(clippy::unwrap_used)]

use proptest::prelude::*;

use super::*;

#[test]
fn rounds_half_to_even_and_keeps_the_residue() {
    let c = NANOS_PER_CENT;
    for (exact, cents) in [
        (0, 0),
        (c / 2, 0),                // 0.5 ¢ → 0 (even)
        (3 * c / 2, 2),            // 1.5 ¢ → 2 (even)
        (5 * c / 2, 2),            // 2.5 ¢ → 2 (even)
        (c / 2 + 1, 1),            // just over half → up
        (c / 2 - 1, 0),            // just under half → down
        (-c / 2, 0),               // −0.5 ¢ → 0
        (-3 * c / 2, -2),          // −1.5 ¢ → −2
        (-(c / 2 + 1), -1),        // just past −half → −1
        (123_456_789_012, 12_346), // $123.456789012 → $123.46
    ] {
        let (got, residue) = to_cents(Nanos(exact)).unwrap();
        assert_eq!(got, cents, "{exact}");
        assert_eq!(got * c + residue.0, exact, "{exact}");
    }
}

#[test]
fn the_ends_of_the_range_are_refused_or_exact_never_wrapped() {
    for exact in [i64::MIN, i64::MIN + 1, i64::MAX, i64::MAX - 1] {
        if let Some((cents, residue)) = to_cents(Nanos(exact)) {
            let back = i128::from(cents) * i128::from(NANOS_PER_CENT) + i128::from(residue.0);
            assert_eq!(back, i128::from(exact));
        }
    }
    // −922,337,203,685.48 cents: the nearest cent is representable, and the residue is exact.
    assert_eq!(
        to_cents(Nanos(i64::MIN)),
        Some((-922_337_203_685, Nanos(-4_775_808)))
    );
    assert!(round_lines(&[Nanos(i64::MAX / 2), Nanos(i64::MAX / 2)]).is_some());
}

proptest! {
    #[test]
    fn rounding_drifts_at_most_half_a_cent_and_the_residue_accounts_for_it(
        lines in prop::collection::vec(-1_000_000_000_000i64..1_000_000_000_000, 0..50)
    ) {
        let exact: Vec<Nanos> = lines.iter().map(|n| Nanos(*n)).collect();
        let (cents, residue) = round_lines(&exact).unwrap();
        let mut sum_cents = 0i128;
        for (n, c) in exact.iter().zip(&cents) {
            let drift = i128::from(n.0) - i128::from(*c) * i128::from(NANOS_PER_CENT);
            prop_assert!(drift.abs() <= i128::from(NANOS_PER_CENT / 2));
            sum_cents += i128::from(*c);
        }
        let total: i128 = exact.iter().map(|n| i128::from(n.0)).sum();
        prop_assert_eq!(sum_cents * i128::from(NANOS_PER_CENT) + i128::from(residue.0), total);
    }
}

mod lines_and_steps {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use crate::invoice::lines::{add_to, totals, unbilled, LineKey, LineKind, Quantities, Sums};
    use crate::invoice::status::{Billed, InvoiceStatus, Step, Transition};
    use crate::ledger::{Account, Ledger};
    use crate::money::Nanos;

    fn usage(period: i64, model: &str, amount: i64) -> (LineKey, Quantities) {
        (
            LineKey {
                period_start_ms: period,
                kind: LineKind::Usage,
                model: Some(model.into()),
            },
            Quantities {
                requests: 1,
                prompt_tokens: 10,
                completion_tokens: 5,
                amount: Nanos(amount),
                ..Quantities::default()
            },
        )
    }

    #[test]
    fn a_late_record_becomes_an_adjustment_of_its_own_period() {
        let mut now = Sums::new();
        let (k, q) = usage(0, "a", 1_500);
        add_to(&mut now, k, q).unwrap();
        // The first invoice bills period 0.
        let first = unbilled(&now, &Sums::new()).unwrap();
        assert_eq!(first.len(), 1);
        let mut billed = Sums::new();
        for (k, q) in first {
            add_to(&mut billed, k, q).unwrap();
        }
        // A record of period 0 arrives late, and one of period 1 on time.
        let (k, q) = usage(0, "a", 700);
        add_to(&mut now, k, q).unwrap();
        let (k, q) = usage(1, "a", 300);
        add_to(&mut now, k, q).unwrap();
        let second = unbilled(&now, &billed).unwrap();
        assert_eq!(second.len(), 2);
        assert_eq!(
            second[0].0.period_start_ms, 0,
            "the adjustment names period 0"
        );
        assert_eq!(second[0].1.amount, Nanos(700));
        assert_eq!(second[0].1.requests, 1);
        assert_eq!(second[1].0.period_start_ms, 1);
        // Nothing new: nothing to bill.
        for (k, q) in second {
            add_to(&mut billed, k, q).unwrap();
        }
        assert!(unbilled(&now, &billed).unwrap().is_empty());
    }

    #[test]
    fn totals_round_each_line_once_and_keep_the_residue() {
        let c = crate::invoice::NANOS_PER_CENT;
        let (t, rounded) = totals(&[
            (LineKind::Usage, Nanos(c * 3 / 2)), // 1.5 ¢ → 2
            (LineKind::Usage, Nanos(c * 5 / 2)), // 2.5 ¢ → 2
            (LineKind::Credit, Nanos(-c / 3)),   // −0.33 ¢ → 0
            (LineKind::Refund, Nanos(-(c + 1))), // −1.0000001 ¢ → −1
        ])
        .unwrap();
        assert_eq!(
            rounded.iter().map(|r| r.0).collect::<Vec<_>>(),
            [2, 2, 0, -1]
        );
        assert_eq!(t.subtotal, Nanos(4 * c));
        assert_eq!(t.credits, Nanos(-c / 3 - c - 1));
        assert_eq!(t.total_cents, 3);
        assert_eq!(t.total_cents * c + t.residue.0, t.total.0);
    }

    fn billed(total: i64, cents: i64) -> Billed<'static> {
        Billed {
            invoice_id: "inv_1",
            tenant_id: "t",
            total: Nanos(total),
            total_cents: cents,
        }
    }

    fn post_all(ledger: &mut Ledger, t: Transition) {
        let Transition::Post(ps) = t else {
            panic!("expected postings")
        };
        for p in ps {
            assert!(ledger.post(p).unwrap());
        }
    }

    #[test]
    fn finalize_then_pay_leaves_nothing_owed_and_the_rounding_with_the_operator() {
        let b = billed(123_456_789, 12); // $0.123456789 → 12 ¢, residue 3,456,789
        let mut l = Ledger::default();
        // The usage that made the receivable.
        l.post(crate::ledger::Posting {
            key: "usage".into(),
            debit: Account::TenantReceivable("t".into()),
            credit: Account::Revenue,
            amount: Nanos(123_456_789),
        })
        .unwrap();
        for p in b.finalize().unwrap() {
            l.post(p).unwrap();
        }
        assert_eq!(l.balance(&Account::TenantReceivable("t".into())), Nanos(0));
        assert_eq!(
            l.balance(&Account::TenantBilled("t".into())),
            Nanos(-120_000_000)
        );
        assert_eq!(l.balance(&Account::Rounding), Nanos(-3_456_789));
        post_all(
            &mut l,
            b.step(InvoiceStatus::Open, Step::Pay).unwrap().unwrap(),
        );
        assert_eq!(l.balance(&Account::TenantBilled("t".into())), Nanos(0));
        assert_eq!(l.balance(&Account::Cash), Nanos(-120_000_000));
        assert_eq!(l.sum(), 0);
        // Paying again does nothing.
        assert_eq!(
            b.step(InvoiceStatus::Paid, Step::Pay).unwrap(),
            Ok(Transition::AlreadyDone)
        );
        // A paid invoice cannot be voided.
        assert!(b.step(InvoiceStatus::Paid, Step::Void).unwrap().is_err());
    }

    #[test]
    fn voiding_an_uncollectible_invoice_cancels_the_charge_exactly() {
        let b = billed(-987_654_321_000, -98_765); // a credit note: −$987.654321 → −98,765 ¢
        let mut l = Ledger::default();
        for p in b.finalize().unwrap() {
            l.post(p).unwrap();
        }
        post_all(
            &mut l,
            b.step(InvoiceStatus::Open, Step::MarkUncollectible)
                .unwrap()
                .unwrap(),
        );
        post_all(
            &mut l,
            b.step(InvoiceStatus::Uncollectible, Step::Void)
                .unwrap()
                .unwrap(),
        );
        for account in [
            Account::TenantBilled("t".into()),
            Account::Rounding,
            Account::BadDebt,
        ] {
            assert_eq!(l.balance(&account), Nanos(0), "{account:?}");
        }
        assert_eq!(l.balance(&Account::Revenue), Nanos(987_654_321_000));
        assert_eq!(
            l.balance(&Account::TenantReceivable("t".into())),
            Nanos(-987_654_321_000)
        );
    }

    #[test]
    fn the_extremes_are_refused_not_wrapped() {
        assert!(billed(i64::MIN, 0).finalize().is_none());
        assert!(billed(0, i64::MAX).finalize().is_none());
    }

    proptest! {
        /// Records of random periods and models arrive in random order while the periods are
        /// closed one by one: after every close, Σ of all invoices' lines per key equals what the
        /// records sum to at that moment, and an invoice once made never changes.
        #[test]
        fn every_record_lands_on_exactly_one_invoice(
            events in prop::collection::vec((0i64..4, 0usize..3, 1i64..5_000_000_000, any::<bool>()), 1..80)
        ) {
            let models = ["a", "b", "c"];
            let mut now = Sums::new();
            let mut invoices: Vec<Vec<(LineKey, Quantities)>> = Vec::new();
            let mut closed = 0i64;
            for (period, model, amount, close) in events {
                // A record can only be of a period that has started (≤ the open one).
                let period = period.min(closed);
                let (k, q) = usage(period, models[model], amount);
                add_to(&mut now, k, q).unwrap();
                if close {
                    let mut billed = Sums::new();
                    for inv in &invoices {
                        for (k, q) in inv {
                            add_to(&mut billed, k.clone(), *q).unwrap();
                        }
                    }
                    let before = invoices.clone();
                    let open: Sums = now.iter().filter(|(k, _)| k.period_start_ms <= closed)
                        .map(|(k, q)| (k.clone(), *q)).collect();
                    invoices.push(unbilled(&open, &billed).unwrap());
                    prop_assert_eq!(&invoices[..before.len()], &before[..]);
                    let mut all: BTreeMap<LineKey, Quantities> = BTreeMap::new();
                    for inv in &invoices {
                        for (k, q) in inv {
                            add_to(&mut all, k.clone(), *q).unwrap();
                        }
                    }
                    prop_assert_eq!(all, open);
                    closed += 1;
                }
            }
        }
    }
}

#[test]
fn a_period_is_found_by_its_name() {
    use super::period::PeriodRule;
    let rule = PeriodRule::new(15, "Europe/Paris").unwrap();
    let p = rule.named("2026-11").unwrap();
    assert_eq!(p.label(), "2026-11");
    assert_eq!(rule.period_at(p.start_ms).unwrap(), p);
    assert_eq!(rule.period_at(p.end_ms - 1).unwrap(), p);
    for bad in ["2026-13", "2026-1", "26-11", "2026/11", "", "2026-00"] {
        assert!(rule.named(bad).is_err(), "{bad}");
    }
}

#[test]
fn fees_split_off_a_usage_line_add_up_to_it() {
    use super::lines::{split_fees, Quantities};
    let usage = Quantities {
        requests: 3,
        amount: Nanos(10_000_000),
        ..Quantities::default()
    };
    let fee: rust_decimal::Decimal = "0.0012".parse().unwrap();
    let (tokens, fees) = split_fees(usage, fee).unwrap();
    assert_eq!(fees, Nanos(3_600_000));
    assert_eq!(tokens.amount.0 + fees.0, usage.amount.0);
    assert_eq!(tokens.requests, 3);
    // A line charged less than its fees (capped at the hold): all of it is fees.
    let small = Quantities {
        amount: Nanos(1_000),
        ..usage
    };
    assert_eq!(split_fees(small, fee).unwrap().1, Nanos(1_000));
    // An adjustment that takes back: no negative fee.
    let negative = Quantities {
        requests: 1,
        amount: Nanos(-5),
        ..usage
    };
    assert_eq!(split_fees(negative, fee).unwrap(), (negative, Nanos(0)));
    assert_eq!(
        split_fees(usage, rust_decimal::Decimal::ZERO).unwrap(),
        (usage, Nanos(0))
    );
}
