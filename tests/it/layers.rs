//! The layers of ARCHITECTURE.md, enforced: no module of `src/` names a module of a higher layer.
//! Modules of one layer may use each other (`engine` and `sim`, `report` and `journal`).

use std::path::{Path, PathBuf};

/// Bottom to top; the index is the layer.
const LAYERS: &[&[&str]] = &[
    &["error", "secret", "atomic_file", "terminal"],
    &["cce"],
    &["plan"],
    &["engine", "sim"],
    &["report", "journal"],
    &["cli"],
];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&module))
}

/// The top-level module a source file belongs to: `src/cce/client.rs` → `cce`,
/// `src/error.rs` → `error`; `lib.rs` and `main.rs` stand above every layer.
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let relative = file.strip_prefix(src).ok()?;
    let first = relative.components().next()?.as_os_str().to_str()?;
    let name = first.strip_suffix(".rs").unwrap_or(first);
    (name != "lib" && name != "main").then(|| name.to_owned())
}

fn rust_files(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("src is readable") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            rust_files(&path, found);
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path);
        }
    }
}

/// Every `crate::NAME` a line of code names (comments are not code).
fn crate_paths(line: &str) -> Vec<&str> {
    let code = line.split("//").next().unwrap_or("");
    code.match_indices("crate::")
        .filter(|(at, _)| {
            // `crate::` itself, not the tail of a longer identifier.
            !code[..*at].ends_with(|c: char| c.is_alphanumeric() || c == '_')
        })
        .map(|(at, m)| {
            let rest = &code[at + m.len()..];
            let end = rest
                .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            &rest[..end]
        })
        .filter(|name| !name.is_empty())
        .collect()
}

/// `use crate::{a, b::{c, d}}`: the first names of the braced group right after `crate::`
/// (here `a` and `b`), on one line.
fn grouped_paths(line: &str) -> Vec<&str> {
    let code = line.split("//").next().unwrap_or("");
    let Some(at) = code.find("crate::{") else {
        return Vec::new();
    };
    let group = &code[at + "crate::{".len()..];
    let mut names = Vec::new();
    let mut depth = 0;
    let mut segment_start = Some(0);
    for (i, c) in group.char_indices() {
        let ends_name = c == ':' || c == ',' || (c == '}' && depth == 0);
        if let Some(start) = segment_start.filter(|_| ends_name) {
            let name = group[start..i].trim();
            if !name.is_empty() {
                names.push(name);
            }
            segment_start = None;
        }
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => break,
            '}' => depth -= 1,
            ',' if depth == 0 => segment_start = Some(i + 1),
            _ => {}
        }
    }
    names
}

#[test]
fn no_module_names_a_module_of_a_higher_layer() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let mut crossings = Vec::new();
    for file in &files {
        let Some(module) = module_of(&src, file) else {
            continue;
        };
        let layer = layer_of(&module)
            .unwrap_or_else(|| panic!("{}: module `{module}` is in no layer", file.display()));
        let text = std::fs::read_to_string(file).expect("a source file is readable");
        for (number, line) in text.lines().enumerate() {
            if line.trim_start().starts_with("//") {
                continue;
            }
            for used in crate_paths(line).into_iter().chain(grouped_paths(line)) {
                if let Some(used_layer) = layer_of(used)
                    && used_layer > layer
                {
                    crossings.push(format!(
                        "{}:{}: `{module}` (layer {layer}) uses `crate::{used}` (layer {used_layer})",
                        file.strip_prefix(&src).unwrap_or(file).display(),
                        number + 1
                    ));
                }
            }
        }
    }
    assert!(
        crossings.is_empty(),
        "imports that cross a layer upward (see ARCHITECTURE.md):\n{}",
        crossings.join("\n")
    );
}

#[test]
fn the_checker_sees_plain_grouped_and_inline_paths_but_not_comments() {
    assert_eq!(crate_paths("use crate::engine::api::X;"), vec!["engine"]);
    assert_eq!(
        crate_paths("let t = crate::plan::resolved::duration_text::format(d);"),
        vec!["plan"]
    );
    assert_eq!(crate_paths("x // crate::cli::y"), Vec::<&str>::new());
    assert_eq!(crate_paths("use my_crate::cli;"), Vec::<&str>::new());
    assert_eq!(
        grouped_paths("use crate::{cli::x, report::{a, b}};"),
        vec!["cli", "report"]
    );
    assert_eq!(
        grouped_paths("use crate::{error::Error, secret};"),
        vec!["error", "secret"]
    );
    assert_eq!(layer_of("cli"), Some(5));
    assert_eq!(layer_of("cce"), Some(1));
}
