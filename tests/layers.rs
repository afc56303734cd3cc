//! The layering check: imports between the top-level modules of `src/` point
//! down only, and never go round in a cycle. It reads every `src/**/*.rs`,
//! maps each `crate::<module>` reference (outside comments and the
//! `#[cfg(test)] mod tests` at the end of a file) to the module's layer, and
//! fails on an upward import, a cycle, or a module with no layer.
//!
//! Layers, bottom up (see `LAYERS`): core (configuration, secrets, database,
//! entities, errors, rendering), `web` (request plumbing), capabilities
//! (which may use each other in one direction only), and the application
//! (`app.rs` with the route map, `lib.rs` with `AppState`, `main.rs`, the
//! commands),
//! which may use everything.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every top-level module of `src/` and its layer. A new module must be
/// given one here.
const LAYERS: &[(&str, &[&str])] = &[
    (
        "core",
        &[
            "settings",
            "secrets",
            "db",
            "entities",
            "error",
            "render",
            "dates",
            "email_address",
            "attempts",
        ],
    ),
    ("web", &["web"]),
    (
        "capabilities",
        &[
            "accounts",
            "invites",
            "visitors",
            "references",
            "mail",
            "audit",
            "home",
            "dashboard",
            "django_import",
        ],
    ),
    // `app`: the server, its middleware order and route map; `cli`: the
    // commands (main.rs only parses and prints).
    (
        "application",
        &["app", "bootstrap", "purge", "cli", "Application"],
    ),
];

/// Items of the crate root that every layer may name: the state the
/// application hands to handlers and middleware.
const ROOT_ITEMS: &[&str] = &["AppState"];

#[test]
fn imports_point_down_and_never_go_round() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let graph = import_graph(&src);
    let problems = problems(&graph);
    assert!(
        problems.is_empty(),
        "The layering check failed (layers and rules: tests/layers.rs):\n  {}",
        problems.join("\n  ")
    );
}

#[test]
fn the_check_sees_upward_imports_and_cycles() {
    let mut graph = Graph::new();
    graph.entry("settings".into()).or_default().insert(
        "mail".into(),
        "src/settings.rs: crate::mail::parse_from".into(),
    );
    graph
        .entry("mail".into())
        .or_default()
        .insert("settings".into(), "src/mail/mod.rs: crate::settings".into());
    graph.entry("web".into()).or_default().insert(
        "invites".into(),
        "src/web/auth.rs: crate::invites::manage".into(),
    );
    graph.entry("invites".into()).or_default().insert(
        "accounts".into(),
        "src/invites/redeem.rs: crate::accounts::users".into(),
    );
    graph.entry("accounts".into()).or_default().insert(
        "invites".into(),
        "src/accounts/login.rs: crate::invites::redeem".into(),
    );
    graph
        .entry("newcomer".into())
        .or_default()
        .insert("settings".into(), "src/newcomer.rs: crate::settings".into());
    let problems = problems(&graph).join("\n");
    assert!(problems.contains("settings (core) imports mail (capabilities)"));
    assert!(problems.contains("web (web) imports invites (capabilities)"));
    assert!(problems.contains("cycle: accounts → invites → accounts"));
    assert!(problems.contains("cycle: mail → settings → mail"));
    assert!(problems.contains("newcomer has no layer"));
}

/// module → module it imports → where (the first reference found).
type Graph = BTreeMap<String, BTreeMap<String, String>>;

fn layer_of(module: &str) -> Option<(usize, &'static str)> {
    LAYERS
        .iter()
        .enumerate()
        .find(|(_, (_, modules))| modules.contains(&module))
        .map(|(rank, (name, _))| (rank, *name))
}

fn problems(graph: &Graph) -> Vec<String> {
    let mut problems = Vec::new();
    let modules: BTreeSet<&String> = graph
        .iter()
        .flat_map(|(from, to)| std::iter::once(from).chain(to.keys()))
        .collect();
    for module in &modules {
        if layer_of(module).is_none() && !ROOT_ITEMS.contains(&module.as_str()) {
            problems.push(format!(
                "{module} has no layer: add it to LAYERS in tests/layers.rs"
            ));
        }
    }
    for (from, imports) in graph {
        let Some((from_rank, from_layer)) = layer_of(from) else {
            continue;
        };
        for (to, place) in imports {
            if let Some((to_rank, to_layer)) = layer_of(to)
                && to_rank > from_rank
            {
                problems.push(format!(
                    "{from} ({from_layer}) imports {to} ({to_layer}), a layer above: {place}"
                ));
            }
        }
    }
    for cycle in cycles(graph) {
        let places: Vec<&str> = cycle
            .windows(2)
            .map(|pair| graph[&pair[0]][&pair[1]].as_str())
            .collect();
        problems.push(format!(
            "cycle: {} ({})",
            cycle.join(" → "),
            places.join("; ")
        ));
    }
    problems
}

/// One cycle through each module that is on one, as `[a, b, …, a]`.
fn cycles(graph: &Graph) -> Vec<Vec<String>> {
    let mut found: Vec<Vec<String>> = Vec::new();
    let mut covered = BTreeSet::new();
    for start in graph.keys() {
        if covered.contains(start) {
            continue;
        }
        if let Some(path) = path_back(graph, start) {
            covered.extend(path.iter().cloned());
            found.push(path);
        }
    }
    found
}

/// The shortest import path from `start` back to itself, breadth first.
fn path_back(graph: &Graph, start: &str) -> Option<Vec<String>> {
    let mut came_from: BTreeMap<&str, &str> = BTreeMap::new();
    let mut queue = std::collections::VecDeque::from([start]);
    while let Some(module) = queue.pop_front() {
        for next in graph.get(module).into_iter().flat_map(BTreeMap::keys) {
            if next == start {
                let mut path = vec![module.to_owned()];
                let mut at = module;
                while at != start {
                    at = came_from[at];
                    path.push(at.to_owned());
                }
                path.reverse();
                path.push(start.to_owned());
                return Some(path);
            }
            if !came_from.contains_key(next.as_str()) && next != start {
                came_from.insert(next, module);
                queue.push_back(next);
            }
        }
    }
    None
}

/// The imports between top-level modules. `lib.rs` and `main.rs` are the
/// application itself: they may import anything and nothing names them.
fn import_graph(src: &Path) -> Graph {
    let mut graph = Graph::new();
    for file in rust_files(src) {
        let relative = file.strip_prefix(src).expect("under src");
        let module = top_level_module(relative);
        if module == "lib" || module == "main" {
            continue;
        }
        let text = std::fs::read_to_string(&file).expect("readable source");
        let imports = graph.entry(module.clone()).or_default();
        for (line_number, line) in code_of(&text).lines().enumerate() {
            for target in crate_references(line) {
                if target != module {
                    imports.entry(target.clone()).or_insert_with(|| {
                        format!(
                            "src/{}:{}: {}",
                            relative.display(),
                            line_number + 1,
                            line.trim().trim_end_matches(';')
                        )
                    });
                }
            }
        }
    }
    graph
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).expect("readable directory") {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            files.push(path);
        }
    }
    files.sort();
    files
}

/// `web/auth.rs` → `web`; `settings.rs` → `settings`.
fn top_level_module(relative: &Path) -> String {
    let first = relative
        .components()
        .next()
        .expect("a path")
        .as_os_str()
        .to_string_lossy();
    first.trim_end_matches(".rs").to_owned()
}

/// The source without the unit tests at the end of the file and without
/// comments (line numbers kept), so that neither counts as an import.
fn code_of(text: &str) -> String {
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(at) => &text[..at],
        None => text,
    };
    text.lines()
        .map(|line| match line.find("//") {
            Some(at) => &line[..at],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The top-level names after each `crate::` on a line, including each name
/// in a `crate::{a, b::c}` group.
fn crate_references(line: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = line;
    while let Some(at) = rest.find("crate::") {
        let after = &rest[at + "crate::".len()..];
        if let Some(group) = after.strip_prefix('{') {
            let mut depth = 0;
            let mut item_start = true;
            for (index, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => item_start = true,
                    c if item_start && is_ident(c) => {
                        names.push(identifier(&group[index..]));
                        item_start = false;
                    }
                    _ => {}
                }
            }
        } else {
            let name = identifier(after);
            if !name.is_empty() {
                names.push(name);
            }
        }
        rest = after;
    }
    names
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

fn identifier(text: &str) -> String {
    text.chars().take_while(|&c| is_ident(c)).collect()
}
