//! An error chain as the one line every failing command prints.

/// The error chain as one line: `outer: inner: root cause`.
pub fn one_line(err: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in err.chain() {
        let text = cause.to_string();
        // libtorch appends a C++ backtrace to its messages: the first part says what is wrong
        let text = text
            .split("\nException raised from")
            .next()
            .unwrap_or(&text)
            .trim_end();
        let s = text.replace('\n', " ");
        if !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
    }
    parts.join(": ")
}
