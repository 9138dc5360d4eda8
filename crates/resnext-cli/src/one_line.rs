//! An error chain as the one line every failing command prints.

/// The error chain as one line: `outer: inner: root cause`.
pub fn one_line(err: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in err.chain() {
        let text = cause.to_string();
        // libtorch appends a C++ backtrace to its messages (`Exception raised from`, or `frame #0:`
        // after an allocation failure): the first part says what is wrong
        let text = text
            .split("\nException raised from")
            .next()
            .and_then(|t| t.split("\nframe #").next())
            .unwrap_or(&text)
            .trim_end();
        let s = text.replace('\n', " ");
        if !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::one_line;

    #[test]
    fn libtorch_traces_are_cut() {
        let e = anyhow::anyhow!(
            "Internal torch error: [enforce fail at alloc_cpu.cpp:127] data. DefaultCPUAllocator: not enough memory\nframe #0: c10::ThrowEnforceNotMet(char const*, int)\nframe #1: ..."
        );
        let line = one_line(&e.context("libtorch error"));
        assert!(line.ends_with("not enough memory"), "{line}");
        assert!(!line.contains("frame #"), "{line}");
    }
}
