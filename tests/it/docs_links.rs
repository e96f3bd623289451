//! The documentation's links hold: every relative link in README.md, ARCHITECTURE.md and the
//! book (`docs/src/**/*.md`) names a file or folder that exists, and every `#anchor` names a
//! heading of its page, slugged as GitHub slugs headings. No network: web links are not checked.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

fn repository_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// README.md, ARCHITECTURE.md and every Markdown file under `docs/src`.
fn documentation_pages() -> Vec<PathBuf> {
    let root = repository_root();
    let mut pages = vec![root.join("README.md"), root.join("ARCHITECTURE.md")];
    let mut folders = vec![root.join("docs/src")];
    while let Some(folder) = folders.pop() {
        let entries =
            std::fs::read_dir(&folder).unwrap_or_else(|e| panic!("{}: {e}", folder.display()));
        for entry in entries {
            let path = entry.expect("a readable folder entry").path();
            if path.is_dir() {
                folders.push(path);
            } else if path.extension().is_some_and(|ext| ext == "md") {
                pages.push(path);
            }
        }
    }
    pages.sort();
    pages
}

/// The lines of a page outside fenced code blocks, with their line numbers (1-based).
fn prose_lines(text: &str) -> Vec<(usize, &str)> {
    let mut fence: Option<&str> = None;
    let mut lines = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        let marker = ["```", "~~~"].into_iter().find(|m| trimmed.starts_with(m));
        match (fence, marker) {
            (None, Some(opening)) => fence = Some(opening),
            (Some(open), Some(closing)) if open == closing => fence = None,
            (None, None) => lines.push((index + 1, line)),
            _ => {}
        }
    }
    lines
}

/// A line with its code spans removed: a link written inside backticks is not a link.
fn without_code_spans(line: &str) -> String {
    let mut kept = String::new();
    let mut rest = line;
    while let Some(start) = rest.find('`') {
        kept.push_str(&rest[..start]);
        let ticks = rest[start..].chars().take_while(|&c| c == '`').count();
        let delimiter = "`".repeat(ticks);
        let after_open = &rest[start + ticks..];
        match after_open.find(&delimiter) {
            Some(end) => rest = &after_open[end + ticks..],
            None => {
                rest = after_open;
            }
        }
    }
    kept.push_str(rest);
    kept
}

/// Link targets on one line: inline links `[text](target)` and reference definitions
/// `[label]: target`.
fn link_targets(line: &str) -> Vec<String> {
    let line = without_code_spans(line);
    let mut targets = Vec::new();
    if let Some(definition) = line.trim_start().strip_prefix('[')
        && let Some((_, target)) = definition.split_once("]: ")
    {
        targets.push(target.trim().to_owned());
    }
    let mut rest = line.as_str();
    while let Some(start) = rest.find("](") {
        let after = &rest[start + 2..];
        let Some(end) = after.find(')') else { break };
        let target = after[..end].split_whitespace().next().unwrap_or("");
        targets.push(target.to_owned());
        rest = &after[end + 1..];
    }
    targets
}

/// GitHub's anchor for a heading: lowercase, markup and punctuation dropped except `-` and `_`,
/// spaces to `-`.
fn github_slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            '-' | '_' => Some(c),
            c if c.is_alphanumeric() => Some(c),
            _ => None,
        })
        .collect()
}

/// The anchors of a page's headings; a repeated heading gets `-1`, `-2`... as on GitHub.
fn heading_anchors(text: &str) -> BTreeSet<String> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut anchors = BTreeSet::new();
    for (_, line) in prose_lines(text) {
        let hashes = line.chars().take_while(|&c| c == '#').count();
        let Some(title) = line[hashes..].strip_prefix(' ') else {
            continue;
        };
        if !(1..=6).contains(&hashes) {
            continue;
        }
        let slug = github_slug(title.trim_end_matches('#'));
        let count = seen.entry(slug.clone()).or_default();
        anchors.insert(if *count == 0 {
            slug.clone()
        } else {
            format!("{slug}-{count}")
        });
        *count += 1;
    }
    anchors
}

fn is_external(target: &str) -> bool {
    ["http://", "https://", "mailto:"]
        .iter()
        .any(|scheme| target.starts_with(scheme))
}

/// Every broken link of one page, as `page:line: target: why`.
fn broken_links(page: &Path, anchors_of: &mut HashMap<PathBuf, BTreeSet<String>>) -> Vec<String> {
    let text = std::fs::read_to_string(page).unwrap_or_else(|e| panic!("{}: {e}", page.display()));
    let shown = page
        .strip_prefix(repository_root())
        .unwrap_or(page)
        .display()
        .to_string();
    let mut broken = Vec::new();
    for (number, line) in prose_lines(&text) {
        for target in link_targets(line) {
            if is_external(&target) {
                continue;
            }
            let (file, anchor) = target.split_once('#').unwrap_or((&target, ""));
            let linked = if file.is_empty() {
                page.to_path_buf()
            } else {
                page.parent().expect("a page is in a folder").join(file)
            };
            if !linked.exists() {
                broken.push(format!("{shown}:{number}: {target}: no such file"));
                continue;
            }
            if anchor.is_empty() {
                continue;
            }
            let anchors = anchors_of.entry(linked.clone()).or_insert_with(|| {
                std::fs::read_to_string(&linked)
                    .map(|linked_text| heading_anchors(&linked_text))
                    .unwrap_or_default()
            });
            if !anchors.contains(anchor) {
                broken.push(format!(
                    "{shown}:{number}: {target}: no heading with that anchor"
                ));
            }
        }
    }
    broken
}

#[test]
fn every_relative_link_and_anchor_in_the_documentation_resolves() {
    let pages = documentation_pages();
    assert!(
        pages.len() > 3,
        "README.md, ARCHITECTURE.md and the book's pages are found"
    );
    let mut anchors_of = HashMap::new();
    let broken: Vec<String> = pages
        .iter()
        .flat_map(|page| broken_links(page, &mut anchors_of))
        .collect();
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

#[test]
fn slugs_follow_githubs_rules() {
    assert_eq!(
        github_slug("Journal and `--resume`"),
        "journal-and---resume"
    );
    assert_eq!(
        github_slug("The simulator: `flotilla sim`"),
        "the-simulator-flotilla-sim"
    );
    assert_eq!(
        github_slug("Where the time goes, and why it is spent that way"),
        "where-the-time-goes-and-why-it-is-spent-that-way"
    );
    assert_eq!(
        github_slug("`/_sim/state` and the `--state` file"),
        "_simstate-and-the---state-file"
    );
    let anchors = heading_anchors("# Notes\n```sh\n# not a heading\n```\n## Notes\n#no space\n");
    assert_eq!(
        anchors,
        BTreeSet::from(["notes".to_owned(), "notes-1".to_owned()])
    );
}

#[test]
fn links_inside_code_are_not_links() {
    assert_eq!(
        link_targets("see [a](a.md), `[b](b.md)` and [c]: c.md"),
        vec!["a.md".to_owned()]
    );
    assert_eq!(link_targets("[c]: c.md#top"), vec!["c.md#top".to_owned()]);
}
