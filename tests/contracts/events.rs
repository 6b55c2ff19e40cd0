//! The crate docs' catalogue of what the layer reports (`src/events.md`) lists exactly what the
//! source emits: every `tracing::<level>!` call in `src/`, with its target (the module path),
//! level, message and field names; every span (`tracing::<level>_span!`), with its name, level
//! and field names; and every metric name the source holds. A new, changed or removed event,
//! span or metric fails these tests until the catalogue says so.

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
    // A metric's name also starts with the crate's name, and an underscore.
    if cells.len() < 6
        || !cells[1].starts_with("`tower_token_auth")
        || cells[1].starts_with("`tower_token_auth_")
    {
        return None;
    }
    Some((
        cells[1].trim_matches('`').to_owned(),
        cells[2].to_owned(),
        cells[3].to_owned(),
        names(cells[4]),
    ))
}

/// A cell of names, `` `a`, `b` `` (or `—`), as `a, b`.
fn names(cell: &str) -> String {
    let names: Vec<&str> = cell
        .split(',')
        .map(|f| f.trim().trim_matches('`'))
        .filter(|f| !f.is_empty() && *f != "—")
        .collect();
    names.join(", ")
}

/// The table rows of `section` (`## <section>` up to the next heading), as their cells.
fn section_rows<'a>(catalogue: &'a str, section: &str) -> Vec<Vec<&'a str>> {
    let heading = format!("## {section}");
    catalogue
        .lines()
        .skip_while(|l| *l != heading)
        .skip(1)
        .take_while(|l| !l.starts_with('#'))
        .filter(|l| l.starts_with("| `"))
        .map(|l| l.split('|').map(str::trim).collect())
        .collect()
}

/// One span: name, level, field names.
type Span = (String, String, String);

#[test]
fn the_span_table_lists_every_span_the_source_opens() {
    let mut opened = BTreeSet::new();
    for (path, source) in sources(Path::new("src")) {
        for level in ["trace", "debug", "info", "warn", "error"] {
            let open = format!("tracing::{level}_span!(");
            let mut rest = source.as_str();
            while let Some(at) = rest.find(&open) {
                let body = &rest[at + open.len()..];
                let end = closing_paren(body).expect("balanced macro call");
                let mut args = arguments(&body[..end]).into_iter();
                let name = args.next().expect("a span name");
                let name = name
                    .strip_prefix('"')
                    .and_then(|n| n.strip_suffix('"'))
                    .unwrap_or_else(|| panic!("{}: span name {name}", path.display()));
                let fields: Vec<String> = args
                    .map(|a| a.split('=').next().unwrap_or_default().trim().to_owned())
                    .collect();
                opened.insert((name.to_owned(), level.to_uppercase(), fields.join(", ")));
                rest = &body[end..];
            }
        }
    }
    assert!(!opened.is_empty(), "the scan found no span");
    let catalogue = fs::read_to_string("src/events.md").expect("src/events.md");
    let documented: BTreeSet<Span> = section_rows(&catalogue, "The span")
        .into_iter()
        .filter(|cells| cells.len() >= 5)
        .map(|cells| {
            (
                cells[1].trim_matches('`').to_owned(),
                cells[2].to_owned(),
                names(cells[3]),
            )
        })
        .collect();
    assert_eq!(
        opened, documented,
        "src/events.md's span table is out of date"
    );
}

/// Every metric name in the source (a string literal `"tower_token_auth_…"`) is in the
/// catalogue's metrics table, and every name there is in the source; the facade's macros are
/// called in `src/metrics.rs` only, the one place that reports.
#[test]
fn the_metrics_table_lists_every_metric_the_source_reports() {
    let mut reported = BTreeSet::new();
    for (path, source) in sources(Path::new("src")) {
        for mac in ["counter!(", "gauge!(", "histogram!("] {
            if source.contains(&format!("metrics::{mac}")) {
                assert!(
                    path == Path::new("src/metrics.rs"),
                    "{}: reports through the facade outside src/metrics.rs",
                    path.display()
                );
            }
        }
        let mut rest = source.as_str();
        while let Some(at) = rest.find("\"tower_token_auth_") {
            let name = &rest[at + 1..];
            let end = name.find('"').expect("a closed literal");
            reported.insert(name[..end].to_owned());
            rest = &name[end..];
        }
    }
    assert!(
        reported.len() >= 5,
        "the scan found too few metrics: {reported:#?}"
    );
    let catalogue = fs::read_to_string("src/events.md").expect("src/events.md");
    let rows = section_rows(&catalogue, "Metrics");
    let documented: BTreeSet<String> = rows
        .iter()
        .filter(|cells| cells.len() >= 6)
        .map(|cells| cells[1].trim_matches('`').to_owned())
        .collect();
    assert_eq!(
        reported, documented,
        "src/events.md's metrics table is out of date"
    );
    for cells in rows {
        let kind = cells.get(2).copied().unwrap_or_default();
        assert!(
            ["counter", "gauge", "histogram"].contains(&kind),
            "{}: type {kind}",
            cells[1]
        );
        assert!(
            names(cells[3]).starts_with("provider"),
            "{}: every metric is labelled `provider` first",
            cells[1]
        );
        let seconds = cells[1].ends_with("_seconds`");
        let total = cells[1].ends_with("_total`");
        assert!(
            (kind == "counter") == total && (kind == "counter" || seconds),
            "{}: a counter ends in `_total`, a histogram or gauge in its unit, `_seconds`",
            cells[1]
        );
    }
}

/// The `.rs` files under `dir`, with their text, in a stable order.
fn sources(dir: &Path) -> Vec<(std::path::PathBuf, String)> {
    let mut entries: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    let mut out = Vec::new();
    for path in entries {
        if path.is_dir() {
            out.extend(sources(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            let text = fs::read_to_string(&path).unwrap();
            out.push((path, text));
        }
    }
    out
}

fn collect(dir: &Path, out: &mut BTreeSet<Event>) {
    for (path, source) in sources(dir) {
        // Only `tracing::<level>!` and `tracing::<level>_span!` calls are seen: no imported
        // macro, no `event!`, no `span!`, no `#[instrument]`.
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
