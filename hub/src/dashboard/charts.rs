//! Charts as SVG drawn on the server: the dashboard loads nothing from outside the node, so it
//! draws its own bars. Every bar that stands for records links to the list of those records.

use maud::{Markup, html};

/// Colours of the series of a stacked chart, in order; they repeat past the last.
const PALETTE: &[&str] = &[
    "#b3261e", "#d9822b", "#2b6cb0", "#2f855a", "#6b46c1", "#c05621", "#319795", "#975a16",
    "#553c9a", "#4a5568", "#b83280", "#2c7a7b", "#718096",
];

const LABEL_WIDTH: u32 = 180;
const BAR_WIDTH: u32 = 380;
const ROW_HEIGHT: u32 = 26;

/// A chart's frame: its caption, the SVG canvas around `plot`, and what goes under it.
fn figure(
    chart: &str,
    title: &str,
    width: u32,
    height: u32,
    plot: Markup,
    below: Markup,
) -> Markup {
    html! {
        figure.chart {
            figcaption { (title) }
            svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label=(title)
                data-chart=(chart) viewBox=(format!("0 0 {width} {height}"))
                width=(width) height=(height) {
                (plot)
            }
            (below)
        }
    }
}

/// `inner` inside a link to `href`, or alone when there is nothing to link to.
fn linked(href: &Option<String>, inner: Markup) -> Markup {
    match href {
        Some(href) => html! { a href=(href) { (inner) } },
        None => inner,
    }
}

/// One bar: its label, its value and, when the records behind it can be listed, where.
pub struct Bar {
    pub label: String,
    pub value: u64,
    pub href: Option<String>,
}

/// Length of a bar of `value` on a scale whose longest bar is `max`; a non-zero value is never
/// drawn so short that it disappears.
fn scaled(value: u64, max: u64, width: u32) -> u32 {
    if value == 0 || max == 0 {
        return 0;
    }
    let w = (value as f64 / max as f64 * f64::from(width)).round() as u32;
    w.clamp(2, width)
}

/// A horizontal bar chart, one row per bar, in the order given (a workflow's order, so it
/// reads as a funnel).
pub fn bars(chart: &str, title: &str, bars: &[Bar]) -> Markup {
    let max = bars.iter().map(|b| b.value).max().unwrap_or(0);
    let height = ROW_HEIGHT * bars.len().max(1) as u32 + 8;
    let width = LABEL_WIDTH + BAR_WIDTH + 70;
    let plot = html! {
        @for (i, bar) in bars.iter().enumerate() {
            @let y = 4 + ROW_HEIGHT * i as u32;
            @let w = scaled(bar.value, max, BAR_WIDTH);
            g.bar data-label=(bar.label) data-value=(bar.value) {
                text x=(LABEL_WIDTH - 8) y=(y + 17) text-anchor="end" { (bar.label) }
                @let fill = if bar.href.is_some() { PALETTE[0] } else { PALETTE[2] };
                (linked(&bar.href, html! {
                    rect x=(LABEL_WIDTH) y=(y + 3) width=(w) height=(ROW_HEIGHT - 8)
                        fill=(fill) {}
                    text x=(LABEL_WIDTH + w + 6) y=(y + 17) { (bar.value) }
                }))
            }
        }
    };
    figure(chart, title, width, height, plot, html! {})
}

/// One column of a stacked chart: a month, its parts by series, and where its records are.
pub struct Column {
    pub label: String,
    /// A value for each series, in the order of the chart's series.
    pub parts: Vec<u64>,
    pub href: Option<String>,
}

/// One part of a stacked column: its series, its value, where it starts and how tall it is.
type Segment = (usize, u64, u32, u32);

/// Stacked columns (activities of each month by kind), with a legend of the series.
pub fn stacked_columns(chart: &str, title: &str, series: &[String], columns: &[Column]) -> Markup {
    const PLOT_HEIGHT: u32 = 180;
    const COLUMN: u32 = 40;
    let max = columns
        .iter()
        .map(|c| c.parts.iter().sum::<u64>())
        .max()
        .unwrap_or(0);
    let width = 40 + COLUMN * columns.len().max(1) as u32;
    let height = PLOT_HEIGHT + 40;
    let base = PLOT_HEIGHT + 10;
    // Each column's segments bottom up, and the column's top.
    let stacks: Vec<(Vec<Segment>, u32)> = columns
        .iter()
        .map(|column| {
            let mut top = base;
            let mut segments = Vec::new();
            for (s, part) in column.parts.iter().enumerate() {
                let h = scaled(*part, max, PLOT_HEIGHT);
                if h > 0 {
                    top = top.saturating_sub(h);
                    segments.push((s, *part, top, h));
                }
            }
            (segments, top)
        })
        .collect();
    let plot = html! {
        line x1="30" y1=(base) x2=(width) y2=(base) stroke="#999" {}
        @for (i, (column, (segments, top))) in columns.iter().zip(&stacks).enumerate() {
            @let x = 36 + COLUMN * i as u32;
            @let middle = x + (COLUMN - 10) / 2;
            @let total: u64 = column.parts.iter().sum();
            g.column data-label=(column.label) data-value=(total) {
                @for (s, part, y, h) in segments {
                    rect x=(x) y=(y) width=(COLUMN - 10) height=(h)
                        fill=(PALETTE[s % PALETTE.len()]) {
                        title { (series.get(*s).map(String::as_str).unwrap_or("")) "：" (part) }
                    }
                }
                (linked(&column.href, html! {
                    text x=(middle) y=(top.saturating_sub(4)) text-anchor="middle" { (total) }
                }))
                text x=(middle) y=(base + 16) text-anchor="middle" font-size="10" { (column.label) }
            }
        }
    };
    let legend = html! {
        ul.legend {
            @for (s, name) in series.iter().enumerate() {
                li { span.swatch style=(format!("background:{}", PALETTE[s % PALETTE.len()])) {} (name) }
            }
        }
    };
    figure(chart, title, width, height, plot, legend)
}

/// A share drawn as a filled bar with its percentage, or a dash when there is nothing to count.
pub fn share(metric: &str, rate: Option<f64>) -> Markup {
    let shown = super::percent(rate);
    let filled = rate.map_or(0, |r| (r.clamp(0.0, 1.0) * 120.0).round() as u32);
    html! {
        span.share {
            svg xmlns="http://www.w3.org/2000/svg" width="120" height="10" viewBox="0 0 120 10" aria-hidden="true" {
                rect x="0" y="0" width="120" height="10" fill="#e2e8f0" {}
                rect x="0" y="0" width=(filled) height="10" fill=(PALETTE[3]) {}
            }
            " "
            span.num data-metric=(metric) data-value=(rate.map(|r| format!("{r:.6}")).unwrap_or_default()) { (shown) }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_scale_to_the_longest_and_never_vanish() {
        assert_eq!(scaled(0, 10, 380), 0);
        assert_eq!(scaled(10, 10, 380), 380);
        assert_eq!(scaled(5, 10, 380), 190);
        assert_eq!(
            scaled(1, 1_000_000, 380),
            2,
            "a small non-zero value stays visible"
        );
        assert_eq!(scaled(3, 0, 380), 0);
    }

    #[test]
    fn labels_are_escaped_and_bars_link_to_their_records() {
        let svg = bars(
            "test",
            "标题",
            &[
                Bar {
                    label: "<script>".into(),
                    value: 3,
                    href: Some("/records?kind=opinion&status=handled".into()),
                },
                Bar {
                    label: "无链接".into(),
                    value: 0,
                    href: None,
                },
            ],
        )
        .into_string();
        assert!(!svg.contains("<script>"), "{svg}");
        assert!(svg.contains("&lt;script&gt;"));
        assert!(svg.contains(r#"href="/records?kind=opinion&amp;status=handled""#));
        assert_eq!(svg.matches("<g class=\"bar\"").count(), 2);
    }

    #[test]
    fn stacked_columns_stack_each_series_once() {
        let svg = stacked_columns(
            "test",
            "活动",
            &["视察".into(), "接待选民".into()],
            &[Column {
                label: "2026-05".into(),
                parts: vec![2, 3],
                href: None,
            }],
        )
        .into_string();
        assert_eq!(svg.matches("<rect").count(), 2);
        assert!(svg.contains(r#"data-value="5""#));
    }
}
