//! ARCHITECTURE.md's invariants that a reading of the source can check.
//!
//! "SQL lives only in `db/` and `migration/`": outside `src/db/` no code
//! builds or sends a query (sea-orm's entity queries, statements, raw
//! execution, the query-building traits) and no string literal holds SQL.
//! Comments are not code: naming a query in a doc comment is fine. Tests
//! and benchmarks' fixtures under `tests/` are not `src/` and may query.

use std::path::{Path, PathBuf};

/// Code (comments and literals left out) that only a query needs.
const QUERY_CODE: &[&str] = &[
    "Entity::find",
    "Entity::insert",
    "Entity::update",
    "Entity::delete",
    "::find_by_id",
    "Statement::",
    "execute_unprepared",
    "execute_raw",
    "query_one_raw",
    "query_all_raw",
    "find_by_statement",
    ".into_tuple",
    ".query_one(",
    ".query_all(",
    "ActiveModel",
    "sea_query",
    "QueryFilter",
    "QuerySelect",
    "QueryOrder",
    "PaginatorTrait",
    "EntityTrait",
    "sea_orm::prelude",
    "entity::prelude",
];

/// How a string literal holding SQL starts (after any whitespace).
const SQL_STARTS: &[&str] = &[
    "SELECT", "INSERT", "UPDATE", "DELETE", "WITH", "CREATE", "DROP", "ALTER", "PRAGMA",
];

/// What a string literal holding a piece of SQL contains.
const SQL_PIECES: &[&str] = &["SELECT ", "INSERT INTO", "DELETE FROM", " FROM ", " WHERE "];

/// Where SQL may live, relative to the crate.
const ALLOWED: &[&str] = &["src/db/", "src/ui/assets"];

#[test]
fn sql_lives_only_in_db() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    assert!(
        files.len() > 20,
        "found only {} files under src/",
        files.len()
    );
    let mut found = Vec::new();
    for path in files {
        let shown = path
            .strip_prefix(root)
            .expect("under the crate")
            .to_string_lossy()
            .replace('\\', "/");
        if ALLOWED.iter().any(|a| shown.starts_with(a)) {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("read a source file");
        found.extend(
            sql_outside_db(&text)
                .into_iter()
                .map(|(line, what)| format!("{shown}:{line}: {what}")),
        );
    }
    assert!(
        found.is_empty(),
        "SQL lives only in src/db/ and migration/ (ARCHITECTURE.md); move these into a db function:\n{}",
        found.join("\n")
    );
}

/// The scanner itself, on a file with every kind of hiding place.
#[test]
fn the_scan_sees_queries_and_sql_but_not_comments() {
    let text = r####"
// node::Entity::find() in a comment is fine
/* so is "SELECT 1" in a block comment */
fn f() {
    let q = node::Entity::find();
    let c = '"';
    let s = "a string with Entity::find in it is text, not code";
    let sql = r#"
        SELECT * FROM node"#;
    let piece = format!("{COLUMNS} FROM node WHERE id = 1");
    let fine = "Select a node"; let life: &'static str = "update me"; Statement::of();
}
"####;
    let hits = sql_outside_db(text);
    let lines: Vec<usize> = hits.iter().map(|(line, _)| *line).collect();
    assert_eq!(lines, vec![5, 8, 10, 11], "{hits:?}");
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .expect("read a source directory")
        .map(|e| e.expect("a directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Each query-only piece of code and each SQL literal in `text`, with the
/// line it is on.
fn sql_outside_db(text: &str) -> Vec<(usize, String)> {
    let scanned = scan(text);
    let mut found = Vec::new();
    for (index, line) in scanned.code.lines().enumerate() {
        for pattern in QUERY_CODE {
            if line.contains(pattern) {
                found.push((index + 1, format!("`{pattern}`")));
            }
        }
    }
    for (line, literal) in scanned.literals {
        let start = literal.trim_start_matches(|c: char| c.is_whitespace() || c == '\\');
        let starts_sql = SQL_STARTS.iter().any(|k| {
            start.strip_prefix(k).is_some_and(|rest| {
                rest.is_empty() || rest.starts_with(|c: char| c.is_whitespace())
            })
        });
        if starts_sql || SQL_PIECES.iter().any(|p| literal.contains(p)) {
            let shown: String = start.chars().take(60).collect();
            found.push((line, format!("SQL text \"{}\"", shown.replace('\n', " "))));
        }
    }
    found.sort();
    found
}

/// A source file split into its code, with comments and string literals
/// blanked (newlines kept, so lines still count), and its string literals
/// with the line each starts on.
struct Scanned {
    code: String,
    literals: Vec<(usize, String)>,
}

fn scan(text: &str) -> Scanned {
    let chars: Vec<char> = text.chars().collect();
    let at = |i: usize| chars.get(i).copied().unwrap_or('\0');
    let mut code = String::with_capacity(text.len());
    let mut literals = Vec::new();
    let mut line = 1;
    let mut i = 0;
    // Copies the newlines of chars[from..to] into `code`.
    let keep_newlines = |code: &mut String, line: &mut usize, from: usize, to: usize| {
        for c in &chars[from..to.min(chars.len())] {
            if *c == '\n' {
                code.push('\n');
                *line += 1;
            }
        }
    };
    while i < chars.len() {
        let c = chars[i];
        let ident_before = i > 0 && (chars[i - 1].is_alphanumeric() || chars[i - 1] == '_');
        if c == '/' && at(i + 1) == '/' {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
            continue;
        }
        if c == '/' && at(i + 1) == '*' {
            let start = i;
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && at(i + 1) == '*' {
                    depth += 1;
                    i += 2;
                } else if chars[i] == '*' && at(i + 1) == '/' {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
            keep_newlines(&mut code, &mut line, start, i);
            continue;
        }
        // Raw strings: r"..", r#".."#, br"..".
        if !ident_before && (c == 'r' || (c == 'b' && at(i + 1) == 'r')) {
            let mut j = i + if c == 'b' { 2 } else { 1 };
            let mut hashes = 0;
            while at(j) == '#' {
                hashes += 1;
                j += 1;
            }
            if at(j) == '"' {
                let body = j + 1;
                let mut end = body;
                while end < chars.len()
                    && !(chars[end] == '"' && (1..=hashes).all(|h| at(end + h) == '#'))
                {
                    end += 1;
                }
                literals.push((line, chars[body..end.min(chars.len())].iter().collect()));
                keep_newlines(&mut code, &mut line, i, end);
                i = end + 1 + hashes;
                continue;
            }
        }
        if c == '"' {
            let body = i + 1;
            let mut end = body;
            while end < chars.len() && chars[end] != '"' {
                end += if chars[end] == '\\' { 2 } else { 1 };
            }
            literals.push((line, chars[body..end.min(chars.len())].iter().collect()));
            keep_newlines(&mut code, &mut line, i, end);
            i = end + 1;
            continue;
        }
        // A char literal ('"', '\n', '\''), not a lifetime.
        if c == '\'' {
            if at(i + 1) == '\\' {
                let mut end = i + 3;
                while end < chars.len() && chars[end] != '\'' {
                    end += 1;
                }
                i = end + 1;
                continue;
            }
            if at(i + 2) == '\'' {
                i += 3;
                continue;
            }
        }
        if c == '\n' {
            line += 1;
        }
        code.push(c);
        i += 1;
    }
    Scanned { code, literals }
}
