//! Text shown on a terminal or written to a log: control characters escaped, so that input can
//! neither drive the terminal (clear it, recolour it, move the cursor) nor forge a line.

use std::borrow::Cow;

/// `text` with every control character written as an escape a person can read: ESC as `\e`,
/// CR, LF and tab as `\r`, `\n` and `\t`, any other C0 character, DEL and the C1 characters as
/// `\x..`/`\u{..}`, and the bidirectional overrides (which reorder what a reader sees) as
/// `\u{..}`. Everything else, all printable Unicode included, is left as it is. A backslash is
/// left too: escaping is for the reader, not a reversible encoding.
pub fn escape_control(text: &str) -> Cow<'_, str> {
    escape(text, false)
}

/// [`escape_control`], but tabs kept: for a line of source shown under a caret that counts them.
pub fn escape_control_keeping_tabs(text: &str) -> Cow<'_, str> {
    escape(text, true)
}

/// Appends `line` to `out`, escaped, and ends it: for renderings built line by line, so that no
/// value on a line can end it early, forge the next, or drive the terminal.
pub fn push_line(out: &mut String, line: &str) {
    out.push_str(&escape_control(line));
    out.push('\n');
}

/// JSON text (as serde_json writes it, compact or pretty) with the control characters it leaves
/// raw inside strings (DEL, C1, the bidirectional controls) written as `\uXXXX`: the same
/// document, safe to print. serde_json already escapes C0; line breaks between tokens stay.
pub fn escape_control_in_json(json: &str) -> Cow<'_, str> {
    if !json.chars().any(|c| is_unsafe(c) && c != '\n') {
        return Cow::Borrowed(json);
    }
    let mut out = String::with_capacity(json.len() + 8);
    for c in json.chars() {
        if is_unsafe(c) && c != '\n' {
            out.push_str(&format!("\\u{:04x}", c as u32));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

fn escape(text: &str, keep_tabs: bool) -> Cow<'_, str> {
    let needs = |c: char| is_unsafe(c) && !(keep_tabs && c == '\t');
    if !text.chars().any(needs) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if !needs(c) {
            out.push(c);
            continue;
        }
        match c {
            '\u{1b}' => out.push_str("\\e"),
            '\r' => out.push_str("\\r"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x80 => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
        }
    }
    Cow::Owned(out)
}

/// C0, DEL, C1, and the bidirectional embedding, override and isolate characters.
fn is_unsafe(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_and_nothing_else() {
        for (input, want) in [
            ("\u{1b}[2J\u{1b}[31mPWNED", "\\e[2J\\e[31mPWNED"),
            ("abc\r\nX-Evil: 1", "abc\\r\\nX-Evil: 1"),
            ("a\tb\u{0}c\u{7f}d", "a\\tb\\x00c\\x7fd"),
            ("\u{9b}31m", "\\u{9b}31m"),
            ("user\u{202e}gpj.exe", "user\\u{202e}gpj.exe"),
        ] {
            assert_eq!(escape_control(input), want, "{input:?}");
        }
        for ordinary in ["ap-southeast-1", "ç€ 東京 ✓", "back\\slash", ""] {
            assert!(
                matches!(escape_control(ordinary), Cow::Borrowed(_)),
                "{ordinary}"
            );
        }
        assert_eq!(escape_control_keeping_tabs("\ta\u{1b}"), "\ta\\e");
    }

    #[test]
    fn json_keeps_its_meaning_without_raw_control_characters() {
        let value = serde_json::json!({"color": "\u{1b}[31m\u{7f}\u{9b}x\u{202e}"});
        let text = serde_json::to_string_pretty(&value).unwrap();
        let safe = escape_control_in_json(&text);
        assert!(!safe.chars().any(|c| is_unsafe(c) && c != '\n'), "{safe}");
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&safe).unwrap(),
            value
        );
    }
}
