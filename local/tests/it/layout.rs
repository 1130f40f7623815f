//! The code's shape, kept: within each crate no file imports a file that
//! imports it back (a handler importing state from `lib.rs` while `lib.rs`
//! imports the handler is the usual way in). Imports are read from the
//! text: `crate::a::b` and `super::…` paths, `use crate::{a, b::c}` lists,
//! names brought in by `use crate::x;`, and paths into a file's own child
//! modules; comments and `#[cfg(test)]` code do not count.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn rust_files(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, found);
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path);
        }
    }
}

/// The module path of a file under `src` (`[]` for lib.rs and main.rs).
fn module_of(src: &Path, file: &Path) -> Vec<String> {
    let mut parts: Vec<String> = file
        .strip_prefix(src)
        .unwrap()
        .with_extension("")
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    parts
}

/// The file that holds the longest prefix of `path` that is a module.
fn resolve(src: &Path, path: &[String]) -> Option<PathBuf> {
    for n in (1..=path.len()).rev() {
        let joined: PathBuf = path[..n].iter().collect();
        for candidate in [
            src.join(&joined).with_extension("rs"),
            src.join(&joined).join("mod.rs"),
        ] {
            if candidate.exists() {
                return Some(candidate);
            }
        }
    }
    ["lib.rs", "main.rs"]
        .iter()
        .map(|root| src.join(root))
        .find(|root| root.exists())
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Every `head::a::b` path in `text` (head not preceded by `::` or a name).
fn paths_from<'a>(text: &'a str, head: &'a str) -> impl Iterator<Item = Vec<String>> + 'a {
    text.match_indices(head).filter_map(move |(at, _)| {
        let before = text[..at].chars().next_back();
        if before.is_some_and(|c| is_ident(c) || c == ':') {
            return None;
        }
        let rest = &text[at + head.len()..];
        if !rest.starts_with("::") {
            return None;
        }
        let mut parts = Vec::new();
        let mut tail = rest;
        while let Some(next) = tail.strip_prefix("::") {
            let name: String = next.chars().take_while(|c| is_ident(*c)).collect();
            if name.is_empty() {
                break;
            }
            tail = &next[name.len()..];
            parts.push(name);
        }
        Some(parts)
    })
}

/// The files of its crate that `file` imports.
fn imports(src: &Path, file: &Path) -> BTreeSet<PathBuf> {
    let text = std::fs::read_to_string(file).unwrap();
    let code = text.split("#[cfg(test)]").next().unwrap_or_default();
    let code: String = code
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    let here = module_of(src, file);
    let parent: Vec<String> = here[..here.len().saturating_sub(1)].to_vec();
    let is_root = matches!(
        file.file_name().and_then(|n| n.to_str()),
        Some("lib.rs" | "main.rs")
    );
    let mut wanted: Vec<Vec<String>> = paths_from(&code, "crate").collect();
    for path in paths_from(&code, "super") {
        wanted.push(parent.iter().cloned().chain(path).collect());
    }
    // `use crate::{a, b::c}`
    for (at, _) in code.match_indices("use crate::{") {
        let list = &code[at + "use crate::{".len()..];
        let list = &list[..list.find('}').unwrap_or(0)];
        for item in list.split(',') {
            let item = item.split_whitespace().next().unwrap_or_default();
            if !item.is_empty() {
                wanted.push(item.split("::").map(str::to_owned).collect());
            }
        }
    }
    // names brought in by `use crate::x::y;`, then used as `y::z`
    let mut aliases: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for path in paths_from(&code, "crate") {
        if let Some(last) = path.last() {
            aliases.insert(last.clone(), path.clone());
        }
    }
    // child modules declared here (`mod x;`), used as `x::y`
    let children: Vec<String> = code
        .lines()
        .filter_map(|l| {
            let l = l.trim();
            let l = l.strip_prefix("pub ").unwrap_or(l);
            l.strip_prefix("mod ")?.strip_suffix(';').map(str::to_owned)
        })
        .collect();
    for child in &children {
        let base: Vec<String> = if is_root { Vec::new() } else { here.clone() };
        for path in paths_from(&code, child) {
            wanted.push(
                base.iter()
                    .cloned()
                    .chain([child.clone()])
                    .chain(path)
                    .collect(),
            );
        }
    }
    for (name, target) in &aliases {
        if children.contains(name) {
            continue;
        }
        for path in paths_from(&code, name) {
            wanted.push(target.iter().cloned().chain(path).collect());
        }
    }
    wanted
        .iter()
        .filter_map(|path| resolve(src, path))
        .filter(|target| target != file)
        .collect()
}

#[test]
fn no_file_imports_a_file_that_imports_it_back() {
    let mut circles = Vec::new();
    let mut crates = 0;
    for entry in std::fs::read_dir(repo()).unwrap() {
        let src = entry.unwrap().path().join("src");
        if !src.join("..").join("Cargo.toml").exists() || !src.is_dir() {
            continue;
        }
        crates += 1;
        let mut files = Vec::new();
        rust_files(&src, &mut files);
        let graph: BTreeMap<PathBuf, BTreeSet<PathBuf>> = files
            .iter()
            .map(|f| (f.clone(), imports(&src, f)))
            .collect();
        for (file, targets) in &graph {
            for target in targets {
                if file < target && graph[target].contains(file) {
                    let name = |p: &Path| p.strip_prefix(repo()).unwrap().display().to_string();
                    circles.push(format!("{} <-> {}", name(file), name(target)));
                }
            }
        }
    }
    assert!(crates >= 9, "found only {crates} crates");
    assert!(
        circles.is_empty(),
        "files importing each other:\n{}",
        circles.join("\n")
    );
}

/// The check above can fail: a file pair that imports each other is found.
#[test]
fn a_circle_is_found() {
    let dir = std::env::temp_dir().join(format!("eventpipe-layout-{}", std::process::id()));
    let src = dir.join("src");
    std::fs::create_dir_all(src.join("controllers")).unwrap();
    std::fs::write(
        src.join("lib.rs"),
        "pub mod controllers;\npub struct State;\nfn app() { controllers::get::handler(); }\n",
    )
    .unwrap();
    std::fs::write(src.join("controllers/mod.rs"), "pub mod get;\n").unwrap();
    std::fs::write(
        src.join("controllers/get.rs"),
        "use crate::State;\npub fn handler() {}\n",
    )
    .unwrap();
    let get = imports(&src, &src.join("controllers/get.rs"));
    let lib = imports(&src, &src.join("lib.rs"));
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(get.contains(&src.join("lib.rs")), "{get:?}");
    assert!(lib.contains(&src.join("controllers/get.rs")), "{lib:?}");
}

/// The most lines a source file may have before its tests: a file past it
/// does more than one job, or one job in more words than a reader holds.
const MOST_LINES: usize = 500;

/// The lines of `text` before its `#[cfg(test)]` module (all of them
/// without one).
fn lines_before_tests(text: &str) -> usize {
    text.lines()
        .take_while(|line| line.trim() != "#[cfg(test)]")
        .count()
}

#[test]
fn no_source_file_is_longer_than_500_lines_before_its_tests() {
    let mut long = Vec::new();
    let mut files = Vec::new();
    for entry in std::fs::read_dir(repo()).unwrap() {
        let krate = entry.unwrap().path();
        if !krate.join("Cargo.toml").exists() {
            continue;
        }
        // Sources and benches; `tests/` is tests through and through.
        for dir in ["src", "benches"] {
            if krate.join(dir).is_dir() {
                rust_files(&krate.join(dir), &mut files);
            }
        }
    }
    assert!(files.len() > 100, "found only {} files", files.len());
    for file in &files {
        let lines = lines_before_tests(&std::fs::read_to_string(file).unwrap());
        if lines > MOST_LINES {
            let name = file.strip_prefix(repo()).unwrap().display().to_string();
            long.push(format!("{name}: {lines}"));
        }
    }
    assert!(
        long.is_empty(),
        "files longer than {MOST_LINES} lines before their tests:\n{}",
        long.join("\n")
    );
}

/// The count above can fail: it stops at the tests, not before.
#[test]
fn lines_are_counted_up_to_the_tests() {
    let text = "fn a() {}\nfn b() {}\n\n#[cfg(test)]\nmod tests {\n}\n";
    assert_eq!(lines_before_tests(text), 3);
    assert_eq!(lines_before_tests(&"x\n".repeat(501)), 501);
}
