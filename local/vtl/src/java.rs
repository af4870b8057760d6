//! Java library behaviour the templates depend on: `String` methods with UTF-16 indices,
//! `java.util.regex` replacement strings, `URLEncoder`/`URLDecoder`, and Apache Commons
//! Lang's `StringEscapeUtils.escapeJavaScript` (what `$util.escapeJavaScript` is).

use std::fmt::Write as _;

/// `StringEscapeUtils.escapeJavaScript` (Commons Lang 2): `'`, `"`, `\` and `/` get a
/// backslash, control characters their short escape or `\u00XX`, and everything beyond
/// ASCII a `\uXXXX` escape per UTF-16 unit.
pub fn escape_javascript(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    for unit_char in text.chars() {
        match unit_char {
            '\'' => out.push_str("\\'"),
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '/' => out.push_str("\\/"),
            '\u{8}' => out.push_str("\\b"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\u{c}' => out.push_str("\\f"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || (c as u32) > 0x7f => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    let _ = write!(out, "\\u{unit:04X}");
                }
            }
            c => out.push(c),
        }
    }
    out
}

/// `URLEncoder.encode(text, "UTF-8")`: letters, digits and `.-*_` stay, space becomes `+`,
/// every other byte of the UTF-8 form becomes `%XX`.
pub fn url_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 3);
    for byte in text.bytes() {
        match byte {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'.' | b'-' | b'*' | b'_' => {
                out.push(byte as char)
            }
            b' ' => out.push('+'),
            _ => {
                let _ = write!(out, "%{byte:02X}");
            }
        }
    }
    out
}

/// `URLDecoder.decode(text, "UTF-8")`: `+` is a space, `%XX` a byte; a malformed escape is an
/// error (Java throws `IllegalArgumentException`).
pub fn url_decode(text: &str) -> Result<String, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while let Some(&byte) = bytes.get(index) {
        match byte {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes
                    .get(index + 1..index + 3)
                    .and_then(|hex| std::str::from_utf8(hex).ok())
                    .and_then(|hex| u8::from_str_radix(hex, 16).ok())
                    .ok_or_else(|| format!("illegal escape at index {index} in urlDecode input"))?;
                out.push(hex);
                index += 2;
            }
            _ => out.push(byte),
        }
        index += 1;
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// Java strings index UTF-16 units.
pub fn utf16(text: &str) -> Vec<u16> {
    text.encode_utf16().collect()
}

pub fn from_utf16(units: &[u16]) -> String {
    String::from_utf16_lossy(units)
}

/// `String.indexOf(needle, from)` in UTF-16 units; -1 when absent.
pub fn index_of(haystack: &str, needle: &str, from: i64) -> i64 {
    let haystack = utf16(haystack);
    let needle = utf16(needle);
    let start = usize::try_from(from.max(0)).unwrap_or(usize::MAX);
    if needle.is_empty() {
        return i64::try_from(start.min(haystack.len())).unwrap_or(-1);
    }
    if start >= haystack.len() {
        return -1;
    }
    haystack
        .get(start..)
        .and_then(|tail| {
            tail.windows(needle.len())
                .position(|window| window == needle)
        })
        .map_or(-1, |found| i64::try_from(found + start).unwrap_or(-1))
}

/// `String.lastIndexOf(needle)` in UTF-16 units; -1 when absent.
pub fn last_index_of(haystack: &str, needle: &str) -> i64 {
    let haystack = utf16(haystack);
    let needle = utf16(needle);
    if needle.is_empty() {
        return i64::try_from(haystack.len()).unwrap_or(-1);
    }
    if needle.len() > haystack.len() {
        return -1;
    }
    haystack
        .windows(needle.len())
        .rposition(|window| window == needle)
        .map_or(-1, |found| i64::try_from(found).unwrap_or(-1))
}

/// `String.substring(begin, end)`; out-of-range indices are an error as in Java.
pub fn substring(text: &str, begin: i64, end: Option<i64>) -> Result<String, String> {
    let units = utf16(text);
    let length = i64::try_from(units.len()).unwrap_or(i64::MAX);
    let end = end.unwrap_or(length);
    if begin < 0 || end > length || begin > end {
        return Err(format!(
            "String index out of range: begin {begin}, end {end}, length {length}"
        ));
    }
    let range = usize::try_from(begin).unwrap_or(0)..usize::try_from(end).unwrap_or(0);
    Ok(from_utf16(units.get(range).unwrap_or(&[])))
}

/// Java's `String.trim`: strips every character up to U+0020 at both ends.
pub fn trim(text: &str) -> &str {
    text.trim_matches(|c: char| c <= ' ')
}

/// Compiles a `java.util.regex` pattern (the common subset regex-lite shares with it).
/// Compiled patterns are cached per thread: templates use a handful of constant patterns on
/// every render.
pub fn regex(pattern: &str) -> Result<regex_lite::Regex, String> {
    const CACHE_SIZE: usize = 64;
    thread_local! {
        static CACHE: std::cell::RefCell<std::collections::HashMap<String, regex_lite::Regex>> =
            std::cell::RefCell::new(std::collections::HashMap::new());
    }
    if let Some(regex) = CACHE.with(|cache| cache.borrow().get(pattern).cloned()) {
        return Ok(regex);
    }
    let regex = regex_lite::Regex::new(pattern)
        .map_err(|error| format!("invalid regular expression: {error}"))?;
    CACHE.with(|cache| {
        let mut cache = cache.borrow_mut();
        if cache.len() >= CACHE_SIZE {
            cache.clear();
        }
        cache.insert(pattern.to_owned(), regex.clone());
    });
    Ok(regex)
}

/// The text a pattern matches if it is a plain literal (letters, digits, spaces and
/// backslash-escaped punctuation only), e.g. `\\'` for AWS's `replaceAll("\\'", "'")`.
fn literal_pattern(pattern: &str) -> Option<String> {
    let mut literal = String::with_capacity(pattern.len());
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(escaped) if !escaped.is_ascii_alphanumeric() => literal.push(escaped),
                _ => return None,
            },
            c if c.is_alphanumeric()
                || matches!(
                    c,
                    ' ' | '\''
                        | '"'
                        | '-'
                        | '_'
                        | ','
                        | ':'
                        | '='
                        | '/'
                        | '&'
                        | '@'
                        | '%'
                        | '!'
                        | '<'
                        | '>'
                        | '~'
                        | '`'
                        | ';'
                ) =>
            {
                literal.push(c)
            }
            _ => return None,
        }
    }
    (!literal.is_empty()).then_some(literal)
}

/// `String.replaceAll(regex, replacement)`: in the replacement `$n` is group n and `\x`
/// is a literal `x`, as in `Matcher.appendReplacement`.
pub fn replace_all(text: &str, pattern: &str, replacement: &str) -> Result<String, String> {
    if !replacement.contains(['$', '\\']) {
        if let Some(literal) = literal_pattern(pattern) {
            return Ok(text.replace(&literal, replacement));
        }
    }
    let regex = regex(pattern)?;
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for captures in regex.captures_iter(text) {
        let Some(whole) = captures.get(0) else {
            continue;
        };
        out.push_str(text.get(last..whole.start()).unwrap_or(""));
        let mut chars = replacement.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some(escaped) => out.push(escaped),
                    None => return Err("character to be escaped is missing".into()),
                },
                '$' => {
                    let mut group = String::new();
                    while let Some(digit) = chars.peek().filter(|d| d.is_ascii_digit()) {
                        group.push(*digit);
                        chars.next();
                    }
                    let index: usize = group
                        .parse()
                        .map_err(|_| "illegal group reference in replacement".to_owned())?;
                    if index >= captures.len() {
                        return Err(format!("no group {index}"));
                    }
                    out.push_str(captures.get(index).map_or("", |m| m.as_str()));
                }
                c => out.push(c),
            }
        }
        last = whole.end();
    }
    out.push_str(text.get(last..).unwrap_or(""));
    Ok(out)
}

/// `String.split(regex)`: trailing empty strings are removed, and a zero-width match at the
/// start yields no leading empty string.
pub fn split(text: &str, pattern: &str) -> Result<Vec<String>, String> {
    let regex = regex(pattern)?;
    let mut parts = Vec::new();
    let mut last = 0;
    for found in regex.find_iter(text) {
        if found.end() == 0 {
            continue;
        }
        parts.push(text.get(last..found.start()).unwrap_or("").to_owned());
        last = found.end();
    }
    parts.push(text.get(last..).unwrap_or("").to_owned());
    while parts.len() > 1 && parts.last().is_some_and(String::is_empty) {
        parts.pop();
    }
    if text.is_empty() {
        return Ok(vec![String::new()]);
    }
    if parts.len() == 1 && parts.first().is_some_and(String::is_empty) {
        parts.clear();
    }
    Ok(parts)
}

/// `String.replaceFirst(regex, replacement)`.
pub fn replace_first(text: &str, pattern: &str, replacement: &str) -> Result<String, String> {
    let compiled = regex(pattern)?;
    match compiled.find(text) {
        Some(found) => {
            let head = text.get(..found.end()).unwrap_or("");
            let replaced = replace_all(head, pattern, replacement)?;
            // Only the first match lies in `head`, unless an earlier overlap exists; re-run on it.
            Ok(format!(
                "{replaced}{}",
                text.get(found.end()..).unwrap_or("")
            ))
        }
        None => Ok(text.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_javascript_escapes_quotes_newlines_slashes_and_non_ascii() {
        assert_eq!(
            escape_javascript("He said \"hi\"\nit's a/b\\c\t"),
            "He said \\\"hi\\\"\\nit\\'s a\\/b\\\\c\\t"
        );
        assert_eq!(
            escape_javascript("é😀\u{1}"),
            "\\u00E9\\uD83D\\uDE00\\u0001"
        );
    }

    #[test]
    fn url_encode_is_java_url_encoder() {
        assert_eq!(url_encode("a b&c=d/é~*._-"), "a+b%26c%3Dd%2F%C3%A9%7E*._-");
        assert_eq!(url_encode("😀"), "%F0%9F%98%80");
        assert_eq!(url_decode("a+b%26c%3Dd%2F%C3%A9").unwrap(), "a b&c=d/é");
        assert!(url_decode("%zz").is_err());
        assert!(url_decode("abc%4").is_err());
    }

    #[test]
    fn replace_all_uses_java_replacement_syntax() {
        assert_eq!(replace_all("a1b22", "[0-9]+", "<$0>").unwrap(), "a<1>b<22>");
        assert_eq!(replace_all("ab", "(a)(b)", "$2$1\\$").unwrap(), "ba$");
        assert_eq!(replace_all("it\\'s", "\\\\'", "'").unwrap(), "it's");
        assert!(replace_all("x", "(", "").is_err());
        assert!(replace_all("x", "x", "$5").is_err());
        // Literal patterns take a fast path with the same result.
        assert_eq!(literal_pattern("\\\\'").as_deref(), Some("\\'"));
        assert_eq!(literal_pattern("a.b"), None);
        assert_eq!(literal_pattern("\\d"), None);
        assert_eq!(replace_all("a-b-c", "-", "+").unwrap(), "a+b+c");
        assert_eq!(replace_all("a.b", "\\.", "!").unwrap(), "a!b");
    }

    #[test]
    fn split_drops_trailing_empty_strings_like_java() {
        assert_eq!(split("a,b,,c,,", ",").unwrap(), vec!["a", "b", "", "c"]);
        assert_eq!(split("", ",").unwrap(), vec![""]);
        assert_eq!(split(",,", ",").unwrap(), Vec::<String>::new());
    }

    #[test]
    fn string_indices_are_utf16_units() {
        assert_eq!(substring("😀ab", 2, None).unwrap(), "ab");
        assert_eq!(index_of("😀ab", "b", 0), 3);
        assert_eq!(last_index_of("abab", "ab"), 2);
        assert!(substring("abc", 2, Some(1)).is_err());
        assert!(substring("abc", 0, Some(4)).is_err());
    }
}
