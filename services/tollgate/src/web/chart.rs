//! Bar charts as SVG, drawn on the server: no chart library, no script. Each chart is an image
//! with a text alternative; the page shows the same numbers in a table beside it.

use std::fmt::Write;

const WIDTH: f64 = 600.0;
const HEIGHT: f64 = 160.0;
const AXIS: f64 = 18.0;

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// One bar: its label (a day), its height's value, and the value as text.
pub(crate) struct Bar {
    pub label: String,
    pub value: f64,
    pub text: String,
}

/// An SVG bar chart of `bars`, titled `title` (the image's accessible name). Values are only
/// drawn from (`f64` is fine for pixels); the exact figures are the `text`s.
pub(crate) fn bars(title: &str, bars: &[Bar]) -> String {
    let max = bars.iter().map(|b| b.value).fold(0.0_f64, f64::max);
    let n = bars.len().max(1) as f64;
    let slot = WIDTH / n;
    let plot = HEIGHT - AXIS;
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{t}" xmlns="http://www.w3.org/2000/svg"><title>{t}</title>"#,
        t = escape(title)
    );
    let _ = write!(
        svg,
        r#"<line class="axis" x1="0" y1="{plot}" x2="{WIDTH}" y2="{plot}"/>"#
    );
    for (i, b) in bars.iter().enumerate() {
        let h = if max > 0.0 {
            (b.value / max) * (plot - 4.0)
        } else {
            0.0
        };
        let x = i as f64 * slot + slot * 0.1;
        let _ = write!(
            svg,
            r#"<rect class="bar" x="{x:.1}" y="{y:.1}" width="{w:.1}" height="{h:.1}"><title>{l}: {v}</title></rect>"#,
            y = plot - h,
            w = slot * 0.8,
            l = escape(&b.label),
            v = escape(&b.text),
        );
    }
    // The first and last labels under the axis.
    if let (Some(first), Some(last)) = (bars.first(), bars.last()) {
        let _ = write!(
            svg,
            r#"<text class="tick" x="0" y="{HEIGHT}">{}</text><text class="tick end" x="{WIDTH}" y="{HEIGHT}" text-anchor="end">{}</text>"#,
            escape(&first.label),
            escape(&last.label)
        );
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bar(label: &str, value: f64) -> Bar {
        Bar {
            label: label.into(),
            value,
            text: format!("{value}"),
        }
    }

    #[test]
    fn the_tallest_bar_fills_the_plot_and_text_is_escaped() {
        let svg = bars(
            "Revenue <&>",
            &[bar("a", 1.0), bar("b", 2.0), bar("c", 0.0)],
        );
        assert!(
            svg.contains(r#"aria-label="Revenue &lt;&amp;&gt;""#),
            "{svg}"
        );
        assert_eq!(svg.matches("<rect").count(), 3);
        assert!(svg.contains(r#"height="138.0""#), "{svg}");
        assert!(svg.contains(r#"height="69.0""#), "{svg}");
        assert!(svg.contains(r#"height="0.0""#), "{svg}");
        assert!(!svg.contains("style="));
    }

    #[test]
    fn no_data_draws_no_bars() {
        let svg = bars("Empty", &[]);
        assert_eq!(svg.matches("<rect").count(), 0);
        assert!(svg.ends_with("</svg>"));
    }
}
