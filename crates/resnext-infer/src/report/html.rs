//! The HTML of `report.html`: escaping, the page's frame (a Content-Security-Policy that allows
//! no request at all, the inline stylesheet), sections, tables, figures, and numbers tagged with
//! where they come from.
//!
//! Every number the page shows from `eval.json` or `cv.json` is a [`num`]: a `<span>` with
//! `data-json`, the JSON pointer of the value in that file, and `data-value`, the value as
//! serde_json writes it (shortest round trip), so that a test can compare the page with the file.

use resnext_stats::Interval;
use std::fmt::Write;

/// The page's stylesheet (inline: the page makes no request).
const STYLE: &str = include_str!("style.css");

/// `s` escaped for HTML text and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
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

/// Standard base64 (RFC 4648, padded), for `data:` URIs.
pub fn base64(bytes: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for k in 0..4 {
            if k <= chunk.len() {
                out.push(char::from(ABC[(n >> (18 - 6 * k) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A note (HTML) in the page's muted style.
pub fn note(html: &str) -> String {
    format!("<p class=\"note\">{html}</p>")
}

/// A number from the report's JSON file at `pointer`, shown with 4 decimals.
pub fn num(pointer: &str, v: f64) -> String {
    format!(
        "<span class=\"v\" data-json=\"{}\" data-value=\"{v}\">{v:.4}</span>",
        esc(pointer)
    )
}

/// A count from the report's JSON file at `pointer`.
pub fn count(pointer: &str, v: usize) -> String {
    format!(
        "<span class=\"v\" data-json=\"{}\" data-value=\"{v}\">{v}</span>",
        esc(pointer)
    )
}

/// An optional number: `n/a` when absent.
pub fn opt_num(pointer: &str, v: Option<f64>) -> String {
    v.map_or_else(|| "n/a".to_string(), |v| num(pointer, v))
}

/// An interval at `pointer` (an object with `estimate`, `low`, `high`): `0.8553 [0.7763,
/// 0.9211]`, or `n/a`.
pub fn interval(pointer: &str, i: &Option<Interval>) -> String {
    match i {
        Some(i) => format!(
            "{} <span class=\"ci\">[{}, {}]</span>",
            num(&format!("{pointer}/estimate"), i.estimate),
            num(&format!("{pointer}/low"), i.low),
            num(&format!("{pointer}/high"), i.high)
        ),
        None => "n/a".to_string(),
    }
}

/// A table (in a horizontally scrolling box) of a header row and body rows of HTML cells.
pub fn table(id: &str, header: &[impl AsRef<str>], rows: &[Vec<String>]) -> String {
    let mut out = format!(
        "<div class=\"scroll\"><table id=\"{}\"><thead><tr>",
        esc(id)
    );
    for h in header {
        let _ = write!(out, "<th>{}</th>", h.as_ref());
    }
    out.push_str("</tr></thead><tbody>");
    for r in rows {
        out.push_str("<tr>");
        for (k, c) in r.iter().enumerate() {
            if k == 0 {
                let _ = write!(out, "<th scope=\"row\">{c}</th>");
            } else {
                let _ = write!(out, "<td>{c}</td>");
            }
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table></div>");
    out
}

/// A figure: inline SVG (or other HTML) and its caption.
pub fn figure(id: &str, body: &str, caption: &str) -> String {
    format!(
        "<figure id=\"{}\">{body}<figcaption>{caption}</figcaption></figure>",
        esc(id)
    )
}

/// An SVG document as an inline element (its XML declaration, if any, dropped).
pub fn inline_svg(svg: &str) -> String {
    match svg.find("<svg") {
        Some(start) => svg[start..].to_string(),
        None => String::new(),
    }
}

/// The sections of a page, in order, and its table of contents.
#[derive(Debug, Default)]
pub struct Page {
    sections: Vec<(String, String, String)>,
}

impl Page {
    /// Adds a section `id` titled `title` (plain text, escaped here) holding `body` (HTML).
    pub fn section(&mut self, id: &str, title: &str, body: String) {
        self.sections
            .push((id.to_string(), title.to_string(), body));
    }

    /// The whole document: `title` and `subtitle` are plain text.
    pub fn render(&self, title: &str, subtitle: &str) -> String {
        let mut out = String::new();
        out.push_str("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">");
        out.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">");
        out.push_str("<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; img-src data:; style-src 'unsafe-inline'\">");
        let _ = write!(
            out,
            "<title>{}</title><style>{STYLE}</style></head><body>",
            esc(title)
        );
        let _ = write!(
            out,
            "<header><h1>{}</h1><p class=\"sub\">{}</p><p class=\"warn\" id=\"notice\">Research software, <strong>not a diagnostic device</strong>: no figure here is a diagnosis.</p></header>",
            esc(title),
            esc(subtitle)
        );
        out.push_str("<nav><ul>");
        for (id, t, _) in &self.sections {
            let _ = write!(out, "<li><a href=\"#{}\">{}</a></li>", esc(id), esc(t));
        }
        out.push_str("</ul></nav><main>");
        for (id, t, body) in &self.sections {
            let _ = write!(
                out,
                "<section id=\"{}\"><h2>{}</h2>{body}</section>",
                esc(id),
                esc(t)
            );
        }
        out.push_str("</main><footer>Written by resnext-rs; one file, no scripts, nothing fetched.</footer></body></html>\n");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped() {
        assert_eq!(
            esc(r#"<img src=x onerror="a">&'"#),
            "&lt;img src=x onerror=&quot;a&quot;&gt;&amp;&#39;"
        );
    }

    #[test]
    fn base64_matches_rfc_4648() {
        for (plain, coded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(plain.as_bytes()), coded);
        }
    }

    #[test]
    fn numbers_say_where_they_come_from() {
        let n = num("/a/b", 0.1 + 0.2);
        assert!(n.contains("data-json=\"/a/b\""), "{n}");
        assert!(n.contains("data-value=\"0.30000000000000004\""), "{n}");
        assert!(n.contains(">0.3000<"), "{n}");
    }
}
