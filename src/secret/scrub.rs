//! Making text that came back from an auth server (or from a failed send) fit for an error
//! message or a log line, when the server may have echoed what the layer sent it.
//!
//! The rule, for every value an auth request carried (`sent`: credentials, API keys, refresh
//! tokens, and every other query, body and header value, since the layer cannot tell a password
//! from a plain field):
//!
//! - the value is looked for in every encoding the request may have used, whatever the server did
//!   with it: as is, JSON-string escaped (`\"`, `\\`, `\/`, `\u00e9`), percent/form encoded (`%21`,
//!   `+`), once or twice over, and case-insensitively (an uppercased echo);
//! - only whole values count: an occurrence inside a longer alphanumeric word is the word, not
//!   the value (a user named "user" leaves "username" alone), and an escape sequence next to a
//!   value (`\n`, `%0A`) is a boundary, not part of a word;
//! - a value of [`SHORT`] characters or more is replaced by `[redacted]` wherever it occurs;
//! - a shorter value cannot be told from ordinary words: when one occurs, the whole text is
//!   withheld rather than shown with a guessable gap.
//!
//! Server text is then cleared of control characters and of long opaque words (tokens, keys the
//! layer never sent), and shortened.

/// What a scrubbed text reads as when it had to be dropped whole.
pub(crate) const WITHHELD: &str = "[text withheld: it may quote a credential]";

const REDACTED: &str = "[redacted]";

/// Sent values of fewer characters than this make the text that holds them withheld, not
/// redacted in place: a 3-character password next to `[redacted]` is as good as shown.
const SHORT: usize = 4;

/// Longest server text that reaches an error message.
const MAX_SERVER_TEXT: usize = 160;

/// Opaque words at least this long are taken for tokens or keys and redacted.
const OPAQUE_WORD: usize = 24;

/// Server text, made fit for a message: control characters turned into spaces (so that they
/// cannot join two words into one), every sent value redacted (or the whole withheld, per the
/// module rule), every long opaque word redacted, and the whole shortened.
pub(crate) fn scrub(text: &str, sent: &[String]) -> String {
    let spaced = without_controls(text);
    let redacted = redact_sent(&spaced, sent);
    if redacted == WITHHELD {
        return redacted;
    }
    let mut out = String::with_capacity(redacted.len());
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        if word.chars().count() >= OPAQUE_WORD {
            out.push_str(REDACTED);
        } else {
            out.push_str(word);
        }
        word.clear();
    };
    for c in redacted.chars() {
        if c.is_ascii_alphanumeric() || "-._~+/=".contains(c) {
            word.push(c);
        } else {
            flush(&mut word, &mut out);
            out.push(c);
        }
    }
    flush(&mut word, &mut out);
    if out.chars().count() > MAX_SERVER_TEXT {
        out = out.chars().take(MAX_SERVER_TEXT).collect();
        out.push('…');
    }
    out
}

/// `text` with every sent value redacted, or [`WITHHELD`] when it holds a short one (see the
/// module docs). Nothing else changes: for text the layer or a provider wrote, which may quote
/// what the server said.
pub(crate) fn redact_sent(text: &str, sent: &[String]) -> String {
    let mut hidden = vec![false; text.len()];
    // A value sent percent-encoded (HTTP Basic's parts, as RFC 6749 §2.3.1 encodes them) may come
    // back decoded: both are looked for.
    let mut needles: Vec<(Vec<char>, bool)> = sent
        .iter()
        .flat_map(|v| {
            let units = units(v);
            let decoded = [true, false].map(|plus| percent_decoded(&units, plus));
            std::iter::once(fold(v.chars())).chain(decoded.map(|d| fold(d.iter().map(|u| u.c))))
        })
        .filter(|needle| !needle.is_empty())
        .map(|needle| {
            let short = needle.len() < SHORT;
            (needle, short)
        })
        .collect();
    needles.sort_unstable();
    needles.dedup();
    if needles.is_empty() {
        return text.to_owned();
    }
    for view in views(&units(text)) {
        let view: Vec<Unit> = view
            .into_iter()
            .flat_map(|u| fold_one(u.c).map(move |c| Unit { c, ..u }))
            .collect();
        for (needle, short) in &needles {
            for (start, end) in whole_matches(&view, needle) {
                if *short {
                    return WITHHELD.to_owned();
                }
                hidden[start..end].iter_mut().for_each(|h| *h = true);
            }
        }
    }
    let mut clean = String::with_capacity(text.len());
    let mut redacting = false;
    for (at, c) in text.char_indices() {
        if hidden[at] {
            if !redacting {
                clean.push_str(REDACTED);
            }
            redacting = true;
        } else {
            redacting = false;
            clean.push(c);
        }
    }
    clean
}

fn units(text: &str) -> Vec<Unit> {
    text.char_indices()
        .map(|(at, c)| Unit {
            c,
            start: at,
            end: at + c.len_utf8(),
        })
        .collect()
}

fn without_controls(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.trim().chars() {
        if c.is_control() {
            if !out.ends_with(' ') {
                out.push(' ');
            }
        } else {
            out.push(c);
        }
    }
    out.trim_end().to_owned()
}

/// One character of a decoded view of the text, with the bytes of the original text it came
/// from (an escape sequence's bytes, for a decoded character).
#[derive(Clone, Copy)]
struct Unit {
    c: char,
    start: usize,
    end: usize,
}

/// Every decoding of the text a sent value may hide behind: as is, JSON-unescaped,
/// percent-decoded (with `+` as a space, as forms write it, and as itself, as URLs do), and the
/// pairs of these that an echo of an echo produces. Decoding is lenient: a sequence that does
/// not decode stays as it is, and the views are searched together, so leniency only ever finds
/// more.
fn views(plain: &[Unit]) -> Vec<Vec<Unit>> {
    let json = json_unescaped(plain);
    let form = percent_decoded(plain, true);
    let url = percent_decoded(plain, false);
    vec![
        json_unescaped(&json),
        percent_decoded(&json, true),
        json_unescaped(&form),
        percent_decoded(&form, true),
        percent_decoded(&url, false),
        json,
        form,
        url,
        plain.to_vec(),
    ]
}

/// Where `needle` occurs in `view` as a whole value: not continued by an alphanumeric character
/// on a side where the value itself ends in one. As byte ranges of the original text.
fn whole_matches(view: &[Unit], needle: &[char]) -> Vec<(usize, usize)> {
    let (Some(&first), Some(&last)) = (needle.first(), needle.last()) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    if view.len() < needle.len() {
        return found;
    }
    for at in 0..=view.len() - needle.len() {
        if view[at].c != first
            || !view[at..at + needle.len()]
                .iter()
                .map(|u| u.c)
                .eq(needle.iter().copied())
        {
            continue;
        }
        let end = at + needle.len();
        let joined_before = at > 0 && first.is_alphanumeric() && view[at - 1].c.is_alphanumeric();
        let joined_after =
            end < view.len() && last.is_alphanumeric() && view[end].c.is_alphanumeric();
        if !joined_before && !joined_after {
            found.push((view[at].start, view[end - 1].end));
        }
    }
    found
}

/// Case folding for comparison: upper then lower case, so that `ß` and `SS` meet.
fn fold_one(c: char) -> impl Iterator<Item = char> {
    c.to_uppercase().flat_map(char::to_lowercase)
}

fn fold(chars: impl Iterator<Item = char>) -> Vec<char> {
    chars.flat_map(fold_one).collect()
}

/// JSON string escapes decoded (`\"`, `\\`, `\/`, `\b\f\n\r\t`, `\uXXXX` with surrogate pairs),
/// in either letter case, as an uppercased echo writes them.
fn json_unescaped(units: &[Unit]) -> Vec<Unit> {
    let mut out = Vec::with_capacity(units.len());
    let mut i = 0;
    while i < units.len() {
        let u = units[i];
        if u.c != '\\' || i + 1 == units.len() {
            out.push(u);
            i += 1;
            continue;
        }
        let next = units[i + 1];
        let simple = match next.c.to_ascii_lowercase() {
            c @ ('"' | '\\' | '/') => Some(c),
            'b' => Some('\u{8}'),
            'f' => Some('\u{c}'),
            'n' => Some('\n'),
            'r' => Some('\r'),
            't' => Some('\t'),
            _ => None,
        };
        if let Some(c) = simple {
            out.push(Unit {
                c,
                start: u.start,
                end: next.end,
            });
            i += 2;
            continue;
        }
        match utf16_escape(units, i) {
            Some((high, after)) if (0xD800..0xDC00).contains(&high) => {
                let low = utf16_escape(units, after).filter(|(l, _)| (0xDC00..0xE000).contains(l));
                let (c, after) = match low {
                    Some((low, after_low)) => {
                        let code = 0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00);
                        (char::from_u32(code).unwrap_or('\u{FFFD}'), after_low)
                    }
                    None => ('\u{FFFD}', after),
                };
                out.push(Unit {
                    c,
                    start: u.start,
                    end: units[after - 1].end,
                });
                i = after;
            }
            Some((code, after)) => {
                out.push(Unit {
                    c: char::from_u32(code).unwrap_or('\u{FFFD}'),
                    start: u.start,
                    end: units[after - 1].end,
                });
                i = after;
            }
            None => {
                out.push(u);
                i += 1;
            }
        }
    }
    out
}

/// A `\uXXXX` escape at `at`: its code unit and the index after it.
fn utf16_escape(units: &[Unit], at: usize) -> Option<(u32, usize)> {
    let escape = units.get(at..at + 6)?;
    if escape[0].c != '\\' || !matches!(escape[1].c, 'u' | 'U') {
        return None;
    }
    let mut code = 0;
    for u in &escape[2..] {
        code = code * 16 + u.c.to_digit(16)?;
    }
    Some((code, at + 6))
}

/// `%XX` decoded into bytes, and the bytes into UTF-8 characters (an invalid sequence becomes
/// U+FFFD); `+` is a space when `plus_is_space`.
fn percent_decoded(units: &[Unit], plus_is_space: bool) -> Vec<Unit> {
    struct Byte {
        b: u8,
        start: usize,
        end: usize,
    }
    let mut bytes = Vec::with_capacity(units.len());
    let mut i = 0;
    while i < units.len() {
        let u = units[i];
        let hex = |k: usize| units.get(k).and_then(|u| u.c.to_digit(16));
        if u.c == '%' {
            if let (Some(high), Some(low)) = (hex(i + 1), hex(i + 2)) {
                bytes.push(Byte {
                    b: (high * 16 + low) as u8,
                    start: u.start,
                    end: units[i + 2].end,
                });
                i += 3;
                continue;
            }
        }
        let c = if plus_is_space && u.c == '+' {
            ' '
        } else {
            u.c
        };
        let mut buf = [0; 4];
        for &b in c.encode_utf8(&mut buf).as_bytes() {
            bytes.push(Byte {
                b,
                start: u.start,
                end: u.end,
            });
        }
        i += 1;
    }
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i].b.is_ascii() {
            out.push(Unit {
                c: char::from(bytes[i].b),
                start: bytes[i].start,
                end: bytes[i].end,
            });
            i += 1;
            continue;
        }
        let decoded = (2..=4).filter(|n| i + n <= bytes.len()).find_map(|n| {
            let raw: Vec<u8> = bytes[i..i + n].iter().map(|b| b.b).collect();
            let c = std::str::from_utf8(&raw).ok()?.chars().next()?;
            Some((c, n))
        });
        let (c, n) = decoded.unwrap_or(('\u{FFFD}', 1));
        out.push(Unit {
            c,
            start: bytes[i].start,
            end: bytes[i + n - 1].end,
        });
        i += n;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sent(values: &[&str]) -> Vec<String> {
        values.iter().map(|v| v.to_string()).collect()
    }

    #[test]
    fn server_text_is_scrubbed() {
        let values = sent(&["hunter2-pw"]);
        assert_eq!(
            scrub("bad password hunter2-pw for bob\r\n", &values),
            "bad password [redacted] for bob"
        );
        let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl";
        assert_eq!(
            scrub(&format!("token {jwt} expired"), &[]),
            "token [redacted] expired"
        );
        assert_eq!(
            scrub("key c5f90f4b-9d69-416a-8611-8a8c8d605c36 unknown", &[]),
            "key [redacted] unknown"
        );
        assert_eq!(scrub("Token is not active", &[]), "Token is not active");
        // A shorter sent value inside a longer one: the whole of both is hidden, in any order.
        let values = sent(&["apiclient", "alice", "alice-Winter2024!"]);
        assert_eq!(
            scrub("invalid password alice-Winter2024! for user alice", &values),
            "invalid password [redacted] for user [redacted]"
        );
        let long = "word ".repeat(100);
        let short = scrub(&long, &[]);
        assert_eq!(short.chars().count(), MAX_SERVER_TEXT + 1);
        assert!(short.ends_with('…'));
    }

    #[test]
    fn every_encoding_of_a_sent_value_is_redacted() {
        let json = sent(&[r#"Pq"x\y-SECRET9"#]);
        // The JSON request body, echoed inside a JSON string: escaped once, or twice.
        assert_eq!(
            redact_sent(r#"{"password":"Pq\"x\\y-SECRET9","user":"u"}"#, &json),
            r#"{"password":"[redacted]","user":"u"}"#
        );
        assert_eq!(
            redact_sent(r#"{\"password\":\"Pq\\\"x\\\\y-SECRET9\"}"#, &json),
            r#"{\"password\":\"[redacted]\"}"#
        );
        // A form-encoded login echoed back, as it was sent, uppercased, or re-encoded.
        let form = sent(&["hunter2!SECRET", "read write"]);
        for echo in [
            "password=hunter2%21SECRET&scope=read+write",
            "PASSWORD=HUNTER2%21SECRET&SCOPE=READ%20WRITE",
            "password=hunter2%2521SECRET&scope=read%2Bwrite",
            "password: hunter2!secret, scope: read write",
        ] {
            let out = redact_sent(echo, &form);
            assert!(!out.to_lowercase().contains("secret"), "{echo} -> {out}");
            assert!(!out.to_lowercase().contains("read"), "{echo} -> {out}");
        }
        // Non-ASCII, as `\u` escapes (a Python server's `ensure_ascii`), a surrogate pair too.
        let accents = sent(&["pässwörd-SECRET-😀"]);
        let echo = r#"bad "p\u00e4ssw\u00F6rd-SECRET-\ud83d\ude00" given"#;
        assert_eq!(redact_sent(echo, &accents), r#"bad "[redacted]" given"#);
        // `ß` folds to `ss` both ways.
        assert_eq!(redact_sent("STRASSE-9", &sent(&["straße-9"])), "[redacted]");
        // An escape sequence next to a value is a boundary, not a letter of a word.
        let values = sent(&["hunter2-pw"]);
        assert_eq!(
            redact_sent(r"line\nhunter2-pw", &values),
            r"line\n[redacted]"
        );
        assert_eq!(
            redact_sent("line%0Ahunter2-pw", &values),
            "line%0A[redacted]"
        );
    }

    #[test]
    fn whole_values_only() {
        let values = sent(&["user", "password"]);
        assert_eq!(
            redact_sent("username or password wrong for user", &values),
            "username or [redacted] wrong for [redacted]"
        );
        assert_eq!(redact_sent("passwords", &values), "passwords");
        assert_eq!(redact_sent("user_name", &values), "[redacted]_name");
        // A value that does not start or end with a letter or digit needs no boundary there.
        let values = sent(&["-SECRET9"]);
        assert_eq!(redact_sent("pw-SECRET9!", &values), "pw[redacted]!");
    }

    #[test]
    fn a_short_value_withholds_the_text() {
        let values = sent(&["Zq9", "alice-pw"]);
        assert_eq!(scrub("bad password Zq9 for alice-pw", &values), WITHHELD);
        assert_eq!(scrub("bad password ZQ9", &values), WITHHELD);
        assert_eq!(scrub(r#"{\"password\":\"zq9\"}"#, &values), WITHHELD);
        // Inside a longer word it is not the value: the text stays.
        assert_eq!(scrub("Zq9x is not a user", &values), "Zq9x is not a user");
    }

    #[test]
    fn control_characters_do_not_join_words() {
        let values = sent(&["hunter2-pw"]);
        assert_eq!(scrub("x\nhunter2-pw\r\n", &values), "x [redacted]");
        assert_eq!(scrub("hun\nter2-pw", &values), "hun ter2-pw");
    }
}
