//! The layering rule of docs/architecture.md, checked on the source itself: every module
//! imports only from its own layer or those below, and no files import each other in a loop.
//! It reads `src/` with `std::fs` and follows `crate::…`, `super::…` and `self::…` paths (use
//! trees included) the way `../shared/tools/layers.py` does, so CI needs no outside tool.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The layers, bottom up (docs/architecture.md, "Layers"; `src/lib.rs` declares the modules
/// in this order). A module may import from its own layer and from those below it.
const LAYERS: &[(&str, &[&str])] = &[
    (
        "leaves",
        &[
            "clock",
            "context",
            "crypto",
            "domain",
            "metrics",
            "supervisor",
        ],
    ),
    ("configuration", &["config", "platform", "ratelimit"]),
    ("storage and Meta", &["storage", "graph"]),
    ("services", &["error", "services", "tokens"]),
    (
        "HTTP",
        &["auth", "connection", "telemetry", "routes", "console"],
    ),
    (
        "composition",
        &[
            "process",
            "startup",
            "openapi",
            "cli",
            "cli_registry",
            "config_check",
            "sandbox",
        ],
    ),
];

/// A module as a path from the crate root: `src/storage/sql/mod.rs` is `["storage", "sql"]`,
/// `src/lib.rs` and `src/main.rs` are the root, `[]`.
type Module = Vec<String>;

/// An import between files: the file that imports, the file imported, and the names used.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Edge {
    from: Module,
    to: Module,
    names: BTreeSet<String>,
}

fn module_of(relative: &str) -> Module {
    let without_ext = relative.strip_suffix(".rs").unwrap_or(relative);
    let mut parts: Vec<String> = without_ext.split('/').map(str::to_owned).collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    parts
}

fn shown(module: &[String]) -> String {
    if module.is_empty() {
        "crate".to_owned()
    } else {
        module.join("::")
    }
}

/// The code without comments (doc comments included; newlines are kept). String and
/// character literals are read as such, so `"https://…"` starts no comment, but kept: a path
/// in a string may be an import (`#[serde(deserialize_with = "crate::domain::lenient::int")]`).
fn code_only(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            // Block comments nest in Rust.
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    if chars[i] == '\n' {
                        out.push('\n');
                    }
                    i += 1;
                }
            }
        } else if c == 'r'
            && (i == 0
                || !is_ident_char(chars[i - 1])
                || (chars[i - 1] == 'b' && (i < 2 || !is_ident_char(chars[i - 2]))))
            && matches!(next, Some('"' | '#'))
            && chars[i + 1..].iter().find(|&&c| c != '#') == Some(&'"')
        {
            // A raw string: r"…", r#"…"#, br"…".
            let hashes = chars[i + 1..].iter().take_while(|&&c| c == '#').count();
            let closing: Vec<char> = std::iter::once('"')
                .chain(std::iter::repeat_n('#', hashes))
                .collect();
            let start = i;
            i += 2 + hashes;
            while i < chars.len() && !chars[i..].starts_with(&closing) {
                i += 1;
            }
            i = (i + closing.len()).min(chars.len());
            out.extend(&chars[start..i]);
        } else if c == '"' {
            let start = i;
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                i += if chars[i] == '\\' { 2 } else { 1 };
            }
            i = (i + 1).min(chars.len());
            out.extend(&chars[start..i]);
        } else if c == '\'' && next == Some('\\') {
            // An escaped character literal: '\n', '\'', '\u{1F600}'.
            let start = i;
            i += 2;
            while i < chars.len() && chars[i] != '\'' {
                i += 1;
            }
            i = (i + 1).min(chars.len());
            out.extend(&chars[start..i]);
        } else if c == '\'' && chars.get(i + 2) == Some(&'\'') {
            out.extend(&chars[i..i + 3]);
            i += 3;
        } else {
            // Everything else, lifetimes and labels ('a) included.
            out.push(c);
            i += 1;
        }
    }
    out
}

/// The code without its `#[cfg(test)]` modules: unit tests may import anything, they are
/// not the design.
fn without_test_modules(code: &str) -> String {
    let mut out = code.to_owned();
    while let Some(at) = out.find("#[cfg(test)]") {
        let rest = &out[at + "#[cfg(test)]".len()..];
        let item = rest.trim_start();
        let is_module = item.starts_with("mod ") || item.starts_with("pub mod ");
        let open = rest.find(['{', ';']);
        let end = match open {
            Some(open) if is_module && rest.as_bytes()[open] == b'{' => {
                let mut depth = 0;
                let mut end = rest.len();
                for (offset, ch) in rest[open..].char_indices() {
                    match ch {
                        '{' => depth += 1,
                        '}' => {
                            depth -= 1;
                            if depth == 0 {
                                end = open + offset + 1;
                                break;
                            }
                        }
                        _ => {}
                    }
                }
                end
            }
            // Another item under cfg(test): only the attribute goes, the item stays checked.
            _ => 0,
        };
        out.replace_range(at..at + "#[cfg(test)]".len() + end, "");
    }
    out
}

/// `a::{b, c::{d, e}}` → `a::b`, `a::c::d`, `a::c::e` (whitespace already removed).
fn expand(tree: &str) -> Vec<String> {
    let Some(open) = tree.find('{') else {
        return vec![tree.to_owned()];
    };
    let close = tree.rfind('}').unwrap_or(tree.len());
    let (head, body) = (&tree[..open], &tree[open + 1..close]);
    let mut parts = Vec::new();
    let (mut depth, mut current) = (0, String::new());
    for ch in body.chars() {
        match ch {
            ',' if depth == 0 => {
                parts.push(std::mem::take(&mut current));
                continue;
            }
            '{' => depth += 1,
            '}' => depth -= 1,
            _ => {}
        }
        current.push(ch);
    }
    parts.push(current);
    parts
        .iter()
        .filter(|p| !p.is_empty())
        .flat_map(|p| expand(&format!("{head}{p}")))
        .collect()
}

fn is_ident_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Every `crate::…`, `super::…` or `self::…` path the code names: the leaves of its use
/// trees (a use of a child module by its bare name counts as `self::`), and paths written
/// out in the code.
fn paths_in(code: &str, children: &BTreeSet<String>) -> Vec<String> {
    let mut paths = Vec::new();
    let mut from = 0;
    while let Some(found) = code[from..].find("use") {
        let at = from + found;
        from = at + 3;
        let before = code[..at].chars().next_back();
        let after = code[at + 3..].chars().next();
        if before.is_some_and(is_ident_char) || !after.is_some_and(char::is_whitespace) {
            continue;
        }
        let Some(end) = code[at..].find(';') else {
            break;
        };
        let tree: String = code[at + 3..at + end]
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        let Some((first, _)) = tree.split_once("::") else {
            continue;
        };
        let tree = if children.contains(first) {
            format!("self::{tree}")
        } else {
            tree
        };
        if ["crate", "super", "self"].contains(&tree.split("::").next().unwrap_or_default()) {
            paths.extend(expand(&tree));
        }
    }
    // Paths written out: `crate::metrics::WEBHOOK_POSTS`, `super::super::x`.
    for start in ["crate::", "super::"] {
        let mut from = 0;
        while let Some(found) = code[from..].find(start) {
            let at = from + found;
            from = at + start.len();
            if code[..at].chars().next_back().is_some_and(is_ident_char) {
                continue;
            }
            let mut end = at;
            let bytes = code.as_bytes();
            loop {
                let word_end = code[end..]
                    .find(|c: char| !is_ident_char(c))
                    .map_or(code.len(), |n| end + n);
                if word_end == end {
                    break;
                }
                end = word_end;
                let more = bytes.get(end) == Some(&b':')
                    && bytes.get(end + 1) == Some(&b':')
                    && code[end + 2..].chars().next().is_some_and(is_ident_char);
                if !more {
                    break;
                }
                end += 2;
            }
            let path = &code[at..end];
            if path.contains("::") {
                paths.push(path.to_owned());
            }
        }
    }
    paths
}

/// The imports between files: each file's paths, resolved to the longest module they name.
/// `files` maps a path relative to `src/` to its text.
fn edges(files: &BTreeMap<String, String>) -> Vec<Edge> {
    let modules: BTreeSet<Module> = files.keys().map(|f| module_of(f)).collect();
    let mut found: BTreeMap<(Module, Module), BTreeSet<String>> = BTreeMap::new();
    for (file, text) in files {
        let me = module_of(file);
        let children: BTreeSet<String> = modules
            .iter()
            .filter(|m| m.len() == me.len() + 1 && m.starts_with(&me))
            .map(|m| m[me.len()].clone())
            .collect();
        let code = without_test_modules(&code_only(text));
        for path in paths_in(&code, &children) {
            let segments: Vec<&str> = path.split("::").filter(|s| !s.is_empty()).collect();
            let (base, rest): (Module, &[&str]) = if segments[0] == "crate" {
                (Vec::new(), &segments[1..])
            } else {
                let mut base = me.clone();
                let mut rest = &segments[..];
                while let Some((&first, tail)) = rest.split_first() {
                    match first {
                        "super" => {
                            base.pop();
                        }
                        "self" => {}
                        _ => break,
                    }
                    rest = tail;
                }
                (base, rest)
            };
            let target = (1..=rest.len()).rev().find_map(|n| {
                let mut candidate = base.clone();
                candidate.extend(rest[..n].iter().map(|s| (*s).to_owned()));
                modules.contains(&candidate).then_some(candidate)
            });
            if let Some(to) = target
                && to != me
                && !to.is_empty()
            {
                found
                    .entry((me.clone(), to))
                    .or_default()
                    .insert(rest.last().copied().unwrap_or_default().to_owned());
            }
        }
    }
    found
        .into_iter()
        .map(|((from, to), names)| Edge { from, to, names })
        .collect()
}

/// The layer of a module, by its top-level module; None for one the table does not place.
fn layer_of(module: &[String]) -> Option<usize> {
    let top = module.first()?;
    LAYERS
        .iter()
        .position(|(_, members)| members.contains(&top.as_str()))
}

/// Each import that reaches up to a higher layer, said plainly.
fn layer_violations(edges: &[Edge]) -> Vec<String> {
    let mut violations = Vec::new();
    for edge in edges {
        if let (Some(from), Some(to)) = (layer_of(&edge.from), layer_of(&edge.to))
            && to > from
        {
            violations.push(format!(
                "{} ({}) imports {} ({}) through `{}`: a lower layer may not import a higher one",
                shown(&edge.from),
                LAYERS[from].0,
                shown(&edge.to),
                LAYERS[to].0,
                edge.names.iter().cloned().collect::<Vec<_>>().join("`, `")
            ));
        }
    }
    violations
}

/// Groups of two or more files that import each other in a loop (the strongly connected
/// components of the import graph), each sorted.
fn circles(edges: &[Edge]) -> Vec<Vec<Module>> {
    let mut next: BTreeMap<&Module, BTreeSet<&Module>> = BTreeMap::new();
    for edge in edges {
        next.entry(&edge.from).or_default().insert(&edge.to);
    }
    let reachable = |start: &Module| {
        let mut seen: BTreeSet<&Module> = BTreeSet::new();
        let mut stack: Vec<&Module> = next.get(start).into_iter().flatten().copied().collect();
        while let Some(m) = stack.pop() {
            if seen.insert(m) {
                stack.extend(next.get(m).into_iter().flatten().copied());
            }
        }
        seen.into_iter().cloned().collect::<BTreeSet<Module>>()
    };
    let nodes: BTreeSet<&Module> = edges.iter().flat_map(|e| [&e.from, &e.to]).collect();
    let reach: BTreeMap<&Module, BTreeSet<Module>> =
        nodes.iter().map(|&m| (m, reachable(m))).collect();
    let mut placed = BTreeSet::new();
    let mut found = Vec::new();
    for &node in &nodes {
        if placed.contains(node) || !reach[node].contains(node) {
            continue;
        }
        let circle: Vec<Module> = reach[node]
            .iter()
            .filter(|other| reach.get(other).is_some_and(|r| r.contains(node)))
            .cloned()
            .collect();
        placed.extend(circle.iter().cloned());
        if circle.len() > 1 {
            found.push(circle);
        }
    }
    found
}

/// Every `.rs` file under `dir`, by its path relative to `root`, with its text.
fn read_sources(root: &Path, dir: &Path, into: &mut BTreeMap<String, String>) {
    for entry in std::fs::read_dir(dir).expect("src/ is readable") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            read_sources(root, &path, into);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let relative = path.strip_prefix(root).expect("under src/");
            let relative = relative
                .components()
                .map(|c| c.as_os_str().to_string_lossy())
                .collect::<Vec<_>>()
                .join("/");
            into.insert(
                relative,
                std::fs::read_to_string(&path).expect("UTF-8 source"),
            );
        }
    }
}

fn sources() -> BTreeMap<String, String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = BTreeMap::new();
    read_sources(&root, &root, &mut files);
    files
}

fn synthetic(files: &[(&str, &str)]) -> BTreeMap<String, String> {
    files
        .iter()
        .map(|(f, t)| ((*f).to_owned(), (*t).to_owned()))
        .collect()
}

#[test]
fn no_module_imports_from_a_higher_layer() {
    let files = sources();
    let found = edges(&files);
    assert!(
        found.len() > 100,
        "the import graph was read: {} edges",
        found.len()
    );
    let violations = layer_violations(&found);
    assert!(violations.is_empty(), "{}", violations.join("\n"));
}

#[test]
fn no_files_import_each_other_in_a_loop() {
    let circles = circles(&edges(&sources()));
    assert!(
        circles.is_empty(),
        "import circles: {:?}",
        circles
            .iter()
            .map(|c| c.iter().map(|m| shown(m)).collect::<Vec<_>>())
            .collect::<Vec<_>>()
    );
}

#[test]
fn every_module_of_the_crate_has_its_layer() {
    let lib = code_only(&sources()["lib.rs"]);
    let declared: BTreeSet<&str> = lib
        .lines()
        .filter_map(|l| l.trim().strip_prefix("pub mod "))
        .map(|l| l.trim_end_matches(';').trim())
        .collect();
    let placed: BTreeSet<&str> = LAYERS.iter().flat_map(|(_, m)| m.iter().copied()).collect();
    assert_eq!(
        declared, placed,
        "src/lib.rs declares exactly the modules the layer table places"
    );
}

#[test]
fn a_domain_module_importing_routes_is_refused() {
    let files = synthetic(&[
        ("domain/mod.rs", "pub mod group_id;"),
        (
            "domain/group_id.rs",
            "use crate::routes::extract::Authorized;\npub struct GroupId;",
        ),
        ("routes/mod.rs", "pub mod extract;"),
        ("routes/extract.rs", "use crate::domain::GroupId;"),
    ]);
    let violations = layer_violations(&edges(&files));
    assert_eq!(violations.len(), 1, "{violations:?}");
    assert!(
        violations[0].starts_with("domain::group_id (leaves) imports routes::extract (HTTP)"),
        "{}",
        violations[0]
    );
}

#[test]
fn imports_downwards_and_within_a_layer_are_allowed() {
    let files = synthetic(&[
        (
            "routes/mod.rs",
            "use crate::services::creation::Creations;\nuse crate::auth::Principal;",
        ),
        (
            "services/creation.rs",
            "use crate::{error::ApiError, storage::{Storage, sql::Dialect}};",
        ),
        ("error.rs", "use crate::graph::UpstreamError;"),
        ("graph/mod.rs", "use crate::storage::Storage;"),
        ("storage/mod.rs", "pub mod sql;"),
        ("storage/sql/mod.rs", ""),
        ("auth.rs", ""),
    ]);
    let found = edges(&files);
    assert_eq!(found.len(), 7, "{found:#?}");
    assert!(layer_violations(&found).is_empty());
}

#[test]
fn every_way_of_naming_a_module_is_followed() {
    let files = synthetic(&[
        ("storage/mod.rs", "pub mod sql;\nuse sql::SqlStorage;"),
        (
            "storage/sql/events.rs",
            "use super::super::records::Page;\nfn f() { crate::routes::configure(); }",
        ),
        ("storage/sql/mod.rs", "pub(super) use self::events::x;"),
        ("storage/records.rs", ""),
        ("routes/mod.rs", ""),
    ]);
    let found: Vec<(String, String)> = edges(&files)
        .into_iter()
        .map(|e| (shown(&e.from), shown(&e.to)))
        .collect();
    let expected = [
        ("storage", "storage::sql"),
        ("storage::sql", "storage::sql::events"),
        ("storage::sql::events", "routes"),
        ("storage::sql::events", "storage::records"),
    ];
    let expected: Vec<(String, String)> = expected
        .iter()
        .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
        .collect();
    assert_eq!(found, expected);
    assert_eq!(
        layer_violations(&edges(&files)).len(),
        1,
        "storage → routes"
    );
}

#[test]
fn comments_and_unit_tests_are_not_imports_but_paths_in_strings_are() {
    let files = synthetic(&[
        (
            "domain/mod.rs",
            r##"
// use crate::routes::a;
/* crate::routes::b /* nested */ crate::routes::c */
/// See `crate::routes::d`.
const URL: &str = "https://example.com/*"; const C: char = '"';
fn f<'a>(x: &'a str) -> &'a str { x }
const R: &str = r#"/* "not a comment" // either"#;
#[derive(serde::Deserialize)]
struct S(#[serde(deserialize_with = "crate::storage::read")] i64);
#[cfg(test)]
mod tests {
    use crate::routes::h;
}
"##,
        ),
        ("routes/mod.rs", ""),
        ("storage/mod.rs", ""),
    ]);
    let found: Vec<String> = edges(&files).iter().map(|e| shown(&e.to)).collect();
    assert_eq!(found, ["storage"]);
}

#[test]
fn files_importing_each_other_make_a_circle() {
    let files = synthetic(&[
        ("services/a.rs", "use super::b::B;"),
        ("services/b.rs", "use crate::services::c::C;"),
        ("services/c.rs", "use crate::services::a::A;"),
        ("services/d.rs", "use crate::services::a::A;"),
    ]);
    let circles = circles(&edges(&files));
    let shown: Vec<Vec<String>> = circles
        .iter()
        .map(|c| c.iter().map(|m| shown(m)).collect())
        .collect();
    assert_eq!(
        shown,
        [["services::a", "services::b", "services::c"]],
        "d imports the circle but is not in it"
    );
}
