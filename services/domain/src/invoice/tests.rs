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
