//! Inline SVG line charts for the HTML report: no script, no external resource.

use std::io::{self, Write};
use std::time::{Duration, UNIX_EPOCH};

use super::html::utc;

/// A chart series: label, colour, (unix second, value) points.
pub(super) type Series<'a> = (&'a str, &'a str, Vec<(u64, f64)>);

/// A line chart: one `<path>` per series, axes labelled with the range.
pub(super) fn svg_chart(
    out: &mut impl Write,
    id: &str,
    title: &str,
    series: &[Series<'_>],
) -> io::Result<()> {
    const W: f64 = 800.0;
    const H: f64 = 220.0;
    const PAD: f64 = 40.0;
    let all = series.iter().flat_map(|(_, _, p)| p.iter());
    let t0 = all.clone().map(|p| p.0).min().unwrap_or(0);
    let t1 = all.clone().map(|p| p.0).max().unwrap_or(0).max(t0 + 1);
    let top = all.map(|p| p.1).fold(0.0_f64, f64::max).max(1.0);
    let x = |t: u64| PAD + (t - t0) as f64 / (t1 - t0) as f64 * (W - 2.0 * PAD);
    let y = |v: f64| H - PAD - v / top * (H - 2.0 * PAD);
    write!(
        out,
        "<svg id=\"{id}\" class=\"chart\" width=\"{W}\" height=\"{H}\" viewBox=\"0 0 {W} {H}\" \
         xmlns=\"http://www.w3.org/2000/svg\" role=\"img\"><title>{title}</title>\
         <text x=\"{PAD}\" y=\"16\">{title}</text>\
         <line x1=\"{PAD}\" y1=\"{b}\" x2=\"{r}\" y2=\"{b}\" stroke=\"#999\"/>\
         <line x1=\"{PAD}\" y1=\"{PAD}\" x2=\"{PAD}\" y2=\"{b}\" stroke=\"#999\"/>\
         <text x=\"2\" y=\"{PAD}\">{top}</text><text x=\"2\" y=\"{b}\">0</text>\
         <text x=\"{PAD}\" y=\"{H2}\">{}</text><text x=\"{r2}\" y=\"{H2}\">+{} s</text>",
        utc(UNIX_EPOCH + Duration::from_secs(t0)),
        t1 - t0,
        b = H - PAD,
        r = W - PAD,
        r2 = W - PAD - 60.0,
        H2 = H - 10.0,
    )?;
    for (index, (label, color, points)) in series.iter().enumerate() {
        out.write_all(b"<path fill=\"none\" stroke-width=\"1.5\" ")?;
        write!(out, "stroke=\"{color}\" data-series=\"{label}\" d=\"")?;
        for (n, (t, v)) in points.iter().enumerate() {
            write!(
                out,
                "{}{:.1},{:.1} ",
                if n == 0 { "M" } else { "L" },
                x(*t),
                y(*v)
            )?;
        }
        if points.len() == 1 {
            // A single point still draws a visible tick.
            write!(out, "l 2,0")?;
        }
        out.write_all(b"\"/>")?;
        write!(
            out,
            "<text x=\"{}\" y=\"30\" fill=\"{color}\">{label}</text>",
            W - PAD - 200.0 + index as f64 * 100.0
        )?;
    }
    out.write_all(b"</svg>\n")
}
