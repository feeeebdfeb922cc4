//! The report as one self-contained HTML page (inline CSS and SVG, no external assets): the
//! table, a Dice chart (mean ± std per method and label budget) and one row per run.

use std::fmt::Write as _;

use crate::cell::{self, METRICS};
use crate::cmd_report::{caption, stat_text, Report};

pub fn escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2em;color:#222}\
table{border-collapse:collapse;margin:1em 0}th,td{border:1px solid #ccc;padding:4px 10px}\
th{background:#f3f3f3}td.n{text-align:right;font-variant-numeric:tabular-nums}\
p.note{color:#555;max-width:60em}code{background:#f3f3f3;padding:0 3px}";

/// Distinct colours for the methods of the chart (cycled beyond eight).
const COLOURS: [&str; 8] = [
    "#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#9c755f",
];

pub fn html(r: &Report, title: &str) -> String {
    let t = escape(title);
    let mut s = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t}</title>\
         <style>{STYLE}</style></head><body>\n<h1>{t}</h1>\n<p class=\"note\">{}</p>\n",
        escape(&caption(&r.part))
    );
    s.push_str("<h2>Mean ± std per method and label budget</h2>\n<table><tr><th>method</th><th>labeled</th><th>runs</th>");
    for (_, h) in METRICS {
        let _ = write!(s, "<th>{}</th>", escape(h));
    }
    s.push_str("</tr>\n");
    for g in &r.groups {
        let _ = write!(
            s,
            "<tr><td>{}</td><td>{}</td><td class=\"n\">{}</td>",
            escape(&g.method),
            escape(&g.budget),
            g.runs.len()
        );
        for st in &g.stats {
            let _ = write!(
                s,
                "<td class=\"n\">{}</td>",
                escape(&stat_text(st, g.runs.len()))
            );
        }
        s.push_str("</tr>\n");
    }
    s.push_str("</table>\n");
    s.push_str(&dice_chart(r));
    s.push_str("<h2>Runs</h2>\n<table><tr><th>method</th><th>labeled</th><th>seed</th>");
    for (_, h) in METRICS {
        let _ = write!(s, "<th>{}</th>", escape(h));
    }
    s.push_str("<th>run directory</th></tr>\n");
    for run in &r.runs {
        let _ = write!(
            s,
            "<tr><td>{}</td><td>{}</td><td class=\"n\">{}</td>",
            escape(&run.method),
            escape(&cell::budget_label(run.budget)),
            run.seed
        );
        for v in run.values {
            let _ = write!(
                s,
                "<td class=\"n\">{}</td>",
                v.map(|v| format!("{v:.4}")).unwrap_or_else(|| "-".into())
            );
        }
        let _ = writeln!(
            s,
            "<td><code>{}</code></td></tr>",
            escape(&run.path.display().to_string())
        );
    }
    s.push_str("</table>\n</body></html>\n");
    s
}

/// Grouped bars of the mean Dice per label budget (one bar per method) with ±std whiskers, as
/// inline SVG; empty when no run has a Dice.
fn dice_chart(r: &Report) -> String {
    if r.groups.iter().all(|g| g.stats[0].mean.is_none()) {
        return String::new();
    }
    let mut budgets: Vec<&str> = Vec::new();
    let mut methods: Vec<&str> = Vec::new();
    for g in &r.groups {
        if !budgets.contains(&g.budget.as_str()) {
            budgets.push(&g.budget);
        }
        if !methods.contains(&g.method.as_str()) {
            methods.push(&g.method);
        }
    }
    let (bar, gap, left, top, plot_h) = (22.0, 24.0, 48.0, 16.0, 200.0);
    let group_w = bar * methods.len() as f64 + gap;
    let width = left + group_w * budgets.len() as f64 + 20.0;
    let height = top + plot_h + 60.0 + 18.0 * methods.len() as f64;
    let y = |v: f64| top + plot_h * (1.0 - v.clamp(0.0, 1.0));
    let mut s = format!(
        "<h2>Dice (mean ± std)</h2>\n<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width:.0}\" \
         height=\"{height:.0}\" font-size=\"12\" font-family=\"sans-serif\">\n"
    );
    for tick in [0.0, 0.25, 0.5, 0.75, 1.0] {
        let _ = writeln!(
            s,
            "<line x1=\"{left}\" x2=\"{:.1}\" y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"#ddd\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{tick:.2}</text>",
            width - 20.0,
            y(tick),
            y(tick),
            left - 4.0,
            y(tick) + 4.0
        );
    }
    for (bi, b) in budgets.iter().enumerate() {
        let x0 = left + gap / 2.0 + group_w * bi as f64;
        for (mi, m) in methods.iter().enumerate() {
            let Some(g) = r.groups.iter().find(|g| g.budget == *b && g.method == *m) else {
                continue;
            };
            let Some(mean) = g.stats[0].mean else {
                continue;
            };
            let x = x0 + bar * mi as f64;
            let _ = writeln!(
                s,
                "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{}\">\
                 <title>{} {}: {}</title></rect>",
                y(mean),
                bar - 2.0,
                y(0.0) - y(mean),
                COLOURS[mi % COLOURS.len()],
                escape(m),
                escape(b),
                escape(&stat_text(&g.stats[0], g.runs.len()))
            );
            if let Some(sd) = g.stats[0].std {
                let cx = x + (bar - 2.0) / 2.0;
                let _ = writeln!(
                    s,
                    "<line x1=\"{cx:.1}\" x2=\"{cx:.1}\" y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"#222\"/>",
                    y(mean - sd),
                    y(mean + sd)
                );
            }
        }
        let _ = writeln!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
            x0 + bar * methods.len() as f64 / 2.0,
            y(0.0) + 16.0,
            escape(b)
        );
    }
    for (mi, m) in methods.iter().enumerate() {
        let ly = y(0.0) + 40.0 + 18.0 * mi as f64;
        let _ = writeln!(
            s,
            "<rect x=\"{left}\" y=\"{:.1}\" width=\"12\" height=\"12\" fill=\"{}\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\">{}</text>",
            ly - 10.0,
            COLOURS[mi % COLOURS.len()],
            left + 18.0,
            ly,
            escape(m)
        );
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(escape("<a & 'b'>"), "&lt;a &amp; &#39;b&#39;&gt;");
    }
}
