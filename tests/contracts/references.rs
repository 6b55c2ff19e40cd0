//! The repository stands alone: no text in it cites a file it does not contain (the design notes
//! and vendor documents it was written from live elsewhere), every citation of an invariant of
//! `ARCHITECTURE.md` by number names one that it lists, and every file, item and test that
//! `ARCHITECTURE.md` names as enforcing or checking an invariant exists.

use std::fs;
use std::path::{Path, PathBuf};

/// Citations of files outside the repository, matched case-insensitively. Spelled in pieces so
/// that this file does not cite them itself.
const OUTSIDE: [&str; 4] = [
    concat!("shared", "/"),
    concat!("seeds", "/"),
    concat!("DESIGN", ".md"),
    concat!("DESIGN", " invariant"),
];

/// How a text cites an invariant of `ARCHITECTURE.md` (in pieces, so that this file cites none).
const CITATION: &str = concat!("ARCHITECTURE.md", " invariant");

/// Where the repository's text lives: these directories (recursively) and files.
const SCANNED_DIRS: [&str; 8] = [
    "src",
    "tests",
    "specs",
    "examples",
    "benches",
    "emulation",
    "scripts",
    ".ci",
];
const SCANNED_FILES: [&str; 4] = [
    "README.md",
    "BENCHMARKS.md",
    "ARCHITECTURE.md",
    "Cargo.toml",
];

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Every text file to scan, as (path relative to the root, content). Build output, VCS data,
/// installed npm packages (`tests/oidc/node_modules`, not the repository's) and files that are not
/// UTF-8 are skipped.
fn texts() -> Vec<(String, String)> {
    let mut paths: Vec<PathBuf> = SCANNED_FILES.iter().map(|f| root().join(f)).collect();
    for dir in SCANNED_DIRS {
        walk(&root().join(dir), &mut paths);
    }
    paths.sort();
    paths
        .into_iter()
        .filter_map(|path| {
            let text = String::from_utf8(fs::read(&path).ok()?).ok()?;
            let name = path
                .strip_prefix(root())
                .ok()?
                .to_string_lossy()
                .into_owned();
            Some((name, text))
        })
        .collect()
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if path.is_dir() {
            if name != "target" && name != "node_modules" && !name.starts_with('.') {
                walk(&path, out);
            }
        } else {
            out.push(path);
        }
    }
}

#[test]
fn nothing_cites_a_file_outside_the_repository() {
    let texts = texts();
    assert!(
        texts.iter().any(|(name, _)| name == "README.md") && texts.len() > 50,
        "the scan found too little: {} files",
        texts.len()
    );
    let mut found = Vec::new();
    for (name, text) in &texts {
        for (number, line) in text.lines().enumerate() {
            let lower = line.to_lowercase();
            for pattern in OUTSIDE {
                if lower.contains(&pattern.to_lowercase()) {
                    found.push(format!("{name}:{}: cites `{pattern}`: {line}", number + 1));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "cite the repository's own files (ARCHITECTURE.md, specs/) or name the vendor's API \
         documentation instead:\n{}",
        found.join("\n")
    );
}

/// The invariants `ARCHITECTURE.md` lists: its `### N. …` headings, which must run 1, 2, 3, ….
fn invariant_count(architecture: &str) -> Result<u32, String> {
    let mut count = 0;
    for line in architecture.lines() {
        let Some(rest) = line.strip_prefix("### ") else {
            continue;
        };
        let Some((number, _)) = rest.split_once(". ") else {
            continue;
        };
        let Ok(number) = number.parse::<u32>() else {
            continue;
        };
        if number != count + 1 {
            return Err(format!(
                "invariant {number} follows invariant {count}: `{line}`"
            ));
        }
        count = number;
    }
    Ok(count)
}

/// The invariant numbers a citation names: "… invariant 4", "… invariants 4, 6 and 13".
fn cited_numbers(after: &str) -> Vec<u32> {
    let after = after.strip_prefix('s').unwrap_or(after);
    let mut numbers = Vec::new();
    for word in after.split([' ', ',']).filter(|w| !w.is_empty()) {
        // Punctuation after a number (`13).`, `4"`) ends the list.
        let bare = word.trim_end_matches(|c: char| !c.is_alphanumeric());
        match bare.parse::<u32>() {
            Ok(n) => numbers.push(n),
            Err(_) if numbers.is_empty() => break,
            Err(_) if matches!(bare, "and" | "or" | "") => continue,
            Err(_) => break,
        }
        if bare != word {
            break;
        }
    }
    numbers
}

#[test]
fn every_cited_invariant_exists() {
    let architecture = fs::read_to_string(root().join("ARCHITECTURE.md"))
        .expect("ARCHITECTURE.md at the repository root");
    let count = invariant_count(&architecture).unwrap_or_else(|e| panic!("ARCHITECTURE.md: {e}"));
    assert_eq!(count, 14, "ARCHITECTURE.md lists {count} invariants");

    let mut bad = Vec::new();
    let mut citations = 0;
    for (name, text) in texts() {
        for (number, line) in text.lines().enumerate() {
            for (at, _) in line.match_indices(CITATION) {
                citations += 1;
                let numbers = cited_numbers(&line[at + CITATION.len()..]);
                let wrong: Vec<_> = numbers.iter().filter(|&&n| n == 0 || n > count).collect();
                if numbers.is_empty() || !wrong.is_empty() {
                    bad.push(format!(
                        "{name}:{}: cites {numbers:?}, ARCHITECTURE.md lists 1 to {count}: {line}",
                        number + 1
                    ));
                }
            }
        }
    }
    assert!(citations > 0, "no citation found: is the scan looking?");
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

#[test]
fn citation_numbers_are_read_whole() {
    assert_eq!(cited_numbers(" 4"), [4]);
    assert_eq!(cited_numbers("s 4, 6, 10 and 13)."), [4, 6, 10, 13]);
    assert_eq!(cited_numbers(" 1, counted: with"), [1]);
    assert_eq!(cited_numbers(" N"), Vec::<u32>::new());
    assert_eq!(cited_numbers(" 15"), [15]);
    assert_eq!(cited_numbers(" 4\") and 7"), [4]);
    assert_eq!(cited_numbers("s 2 & 3"), [2, 3]);
    assert_eq!(
        invariant_count("### 1. a\n### 2. b\n## Other\n### Not one"),
        Ok(2)
    );
    assert!(invariant_count("### 1. a\n### 3. c").is_err());
}

/// The inline code spans of a line: the text between pairs of backticks.
fn code_spans(line: &str) -> impl Iterator<Item = &str> {
    line.split('`').skip(1).step_by(2)
}

/// A repository path named in `ARCHITECTURE.md`: it starts in one of the scanned places, or is
/// a file at the root, and is not a pattern.
fn is_repo_path(span: &str) -> bool {
    let in_dir = SCANNED_DIRS.iter().any(|dir| {
        span.strip_prefix(dir)
            .is_some_and(|rest| rest.starts_with('/'))
    });
    let at_root = SCANNED_FILES.contains(&span);
    (in_dir || at_root) && !span.contains(['*', '{', ' '])
}

fn is_identifier(span: &str) -> bool {
    !span.is_empty()
        && span
            .split("::")
            .all(|part| !part.is_empty() && part.chars().all(|c| c.is_alphanumeric() || c == '_'))
        && !span.starts_with(|c: char| c.is_ascii_digit())
}

/// Whether `word` occurs in `text` as a whole identifier.
fn has_word(text: &str, word: &str) -> bool {
    let ident = |c: char| c.is_alphanumeric() || c == '_';
    text.match_indices(word).any(|(at, _)| {
        let before = text[..at].chars().next_back().is_none_or(|c| !ident(c));
        let after = text[at + word.len()..]
            .chars()
            .next()
            .is_none_or(|c| !ident(c));
        before && after
    })
}

#[test]
fn everything_architecture_names_exists() {
    let architecture = fs::read_to_string(root().join("ARCHITECTURE.md"))
        .expect("ARCHITECTURE.md at the repository root");
    let mut missing = Vec::new();

    for (number, line) in architecture.lines().enumerate() {
        for span in code_spans(line).filter(|s| is_repo_path(s)) {
            if !root().join(span.trim_end_matches('/')).exists() {
                missing.push(format!(
                    "line {}: no `{span}` in the repository",
                    number + 1
                ));
            }
        }
    }

    // "Enforced:" and "Tests:" paragraphs: `path` (`Item`, `Type::method`) or `path` `test_fn`.
    let mut paragraph: Vec<(usize, &str)> = Vec::new();
    // A blank line after the last one closes the last paragraph.
    for (index, line) in architecture.lines().chain([""]).enumerate() {
        if !line.trim().is_empty() {
            paragraph.push((index + 1, line));
            continue;
        }
        let Some(&(first_line, first)) = paragraph.first() else {
            continue;
        };
        let tests = first.starts_with("Tests:");
        if tests || first.starts_with("Enforced:") {
            let mut file: Option<(String, String)> = None;
            for &(at, line) in &paragraph {
                for span in code_spans(line) {
                    if is_repo_path(span) {
                        let text = fs::read_to_string(root().join(span)).unwrap_or_default();
                        file = Some((span.to_owned(), text));
                    } else if is_identifier(span) {
                        let Some((path, text)) = &file else {
                            missing.push(format!("line {at}: `{span}` named before any file"));
                            continue;
                        };
                        let name = span.rsplit("::").next().unwrap_or(span);
                        let found = if tests {
                            has_word(text, name) && text.contains(&format!("fn {name}("))
                        } else {
                            has_word(text, name)
                        };
                        if !found {
                            let what = if tests { "test" } else { "item" };
                            missing.push(format!(
                                "line {at}: no {what} `{span}` in `{path}` (paragraph at line \
                                 {first_line})"
                            ));
                        }
                    }
                }
            }
        }
        paragraph.clear();
    }
    assert!(
        missing.is_empty(),
        "ARCHITECTURE.md is out of date:\n{}",
        missing.join("\n")
    );
}
