//! The crate docs' table of tracing events (`src/events.md`) lists exactly the events the source
//! emits: every `tracing::<level>!` call in `src/`, with its target (the module path), level,
//! message and field names. A new, changed or removed event fails this test until the table
//! says so.

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

/// One event: target, level, message, field names (in the order written).
type Event = (String, String, String, String);

#[test]
fn the_events_table_lists_every_event_the_source_emits() {
    let mut emitted = BTreeSet::new();
    collect(Path::new("src"), &mut emitted);
    assert!(
        emitted.len() >= 10,
        "the scan found too few events: {emitted:#?}"
    );
    let table = fs::read_to_string("src/events.md").expect("src/events.md");
    let documented: BTreeSet<Event> = table.lines().filter_map(row).collect();
    let missing: Vec<_> = emitted.difference(&documented).collect();
    let stale: Vec<_> = documented.difference(&emitted).collect();
    assert!(
        missing.is_empty() && stale.is_empty(),
        "src/events.md is out of date.\nemitted but not documented: {missing:#?}\n\
         documented but not emitted: {stale:#?}"
    );
}

/// A table row `| `target` | level | message | `a`, `b` | when |` as an event.
fn row(line: &str) -> Option<Event> {
    let cells: Vec<&str> = line.split('|').map(str::trim).collect();
    if cells.len() < 6 || !cells[1].starts_with("`tower_token_auth") {
        return None;
    }
    let fields: Vec<&str> = cells[4]
        .split(',')
        .map(|f| f.trim().trim_matches('`'))
        .filter(|f| !f.is_empty() && *f != "—")
        .collect();
    Some((
        cells[1].trim_matches('`').to_owned(),
        cells[2].to_owned(),
        cells[3].to_owned(),
        fields.join(", "),
    ))
}

fn collect(dir: &Path, out: &mut BTreeSet<Event>) {
    let mut entries: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            collect(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let source = fs::read_to_string(&path).unwrap();
            // Only `tracing::<level>!` calls are seen: no imported macro, no `event!`, no span.
            for bare in [
                "tracing::event!(",
                "tracing::span!(",
                "tracing::instrument",
                "use tracing::",
            ] {
                assert!(!source.contains(bare), "{}: {bare}", path.display());
            }
            for level in ["trace", "debug", "info", "warn", "error"] {
                let calls = source.matches(&format!("{level}!(")).count();
                let qualified = source.matches(&format!("tracing::{level}!(")).count();
                assert_eq!(calls, qualified, "{}: a bare {level}!", path.display());
            }
            for (level, args) in macro_calls(&source) {
                out.insert(event(&path, level, &args));
            }
        }
    }
}

/// `src/manager/mod.rs` → `tower_token_auth::manager`; `src/lib.rs` → `tower_token_auth`.
fn target(path: &Path) -> String {
    let relative = path.strip_prefix("src").unwrap().with_extension("");
    let mut parts: Vec<String> = relative
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    if matches!(parts.last().map(String::as_str), Some("mod" | "lib")) {
        parts.pop();
    }
    std::iter::once("tower_token_auth".to_owned())
        .chain(parts)
        .collect::<Vec<_>>()
        .join("::")
}

/// Every `tracing::<level>!( … )` in `source`: the level and the text between the parentheses.
fn macro_calls(source: &str) -> Vec<(&'static str, String)> {
    let mut calls = Vec::new();
    for level in ["trace", "debug", "info", "warn", "error"] {
        let open = format!("tracing::{level}!(");
        let mut rest = source;
        while let Some(at) = rest.find(&open) {
            let body = &rest[at + open.len()..];
            let end = closing_paren(body).expect("balanced macro call");
            calls.push((level, body[..end].to_owned()));
            rest = &body[end..];
        }
    }
    calls
}

/// The index of the parenthesis closing an already opened one, skipping string literals.
fn closing_paren(text: &str) -> Option<usize> {
    let (mut depth, mut in_string, mut escaped) = (1, false, false);
    for (i, c) in text.char_indices() {
        match (in_string, c) {
            (true, _) if escaped => escaped = false,
            (true, '\\') => escaped = true,
            (true, '"') => in_string = false,
            (true, _) => {}
            (false, '"') => in_string = true,
            (false, '(' | '[' | '{') => depth += 1,
            (false, ')' | ']' | '}') => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

/// Splits macro arguments at top-level commas.
fn arguments(args: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let (mut depth, mut in_string, mut escaped) = (0, false, false);
    for c in args.chars() {
        match (in_string, c) {
            (true, _) if escaped => escaped = false,
            (true, '\\') => escaped = true,
            (true, '"') => in_string = false,
            (false, '"') => in_string = true,
            (false, '(' | '[' | '{') => depth += 1,
            (false, ')' | ']' | '}') => depth -= 1,
            (false, ',') if depth == 0 => {
                out.push(String::new());
                continue;
            }
            _ => {}
        }
        out.last_mut().unwrap().push(c);
    }
    out.into_iter()
        .map(|a| a.trim().to_owned())
        .filter(|a| !a.is_empty())
        .collect()
}

fn event(path: &Path, level: &str, args: &str) -> Event {
    let mut args = arguments(args);
    let message = args.pop().expect("a message");
    let message = message
        .strip_prefix('"')
        .and_then(|m| m.strip_suffix('"'))
        .unwrap_or_else(|| panic!("{}: message is not a literal: {message}", path.display()));
    // A `\` at a line's end continues the literal without the line break and the indentation.
    let message: String = message
        .split("\\\n")
        .map(str::trim_start)
        .collect::<Vec<_>>()
        .concat();
    let fields: Vec<&str> = args
        .iter()
        .map(|a| a.split('=').next().unwrap_or_default().trim())
        .collect();
    (
        target(path),
        level.to_uppercase(),
        message,
        fields.join(", "),
    )
}
