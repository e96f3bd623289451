//! The book's examples run for real: every ```` ```console ```` block of `docs/src/*.md` is run
//! against the built binary by trycmd and must print what the page says, and the plan
//! reference's example plan is, byte for byte, the file one of those blocks validates.
//!
//! A block that must not run (it needs credentials, a network or a server that stays up) is a
//! plain ```` ```sh ```` or ```` ```text ```` block instead. trycmd also takes a fence with no
//! language for a command block, so every fence in the book names its language.

use std::path::{Path, PathBuf};

fn repository_file(relative: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn the_books_console_examples_print_what_the_book_says() {
    trycmd::TestCases::new()
        .register_bin("flotilla", PathBuf::from(env!("CARGO_BIN_EXE_flotilla")))
        // The demo plan reads `${IMAGE_TAG:-2.4.0}`; an empty value takes the default, as an
        // unset one does, so a developer's own IMAGE_TAG cannot change the documented output.
        .env("IMAGE_TAG", "")
        .env("NO_COLOR", "1")
        // `flotilla plan` tells where each project id comes from, which the credentials decide:
        // none, whatever the developer's environment or profile file holds.
        .env("HUAWEICLOUD_SDK_AK", "")
        .env("HUAWEICLOUD_SDK_SK", "")
        .env("CLOUD_SDK_AK", "")
        .env("CLOUD_SDK_SK", "")
        .env("OS_AUTH_TOKEN", "")
        .env("HUAWEICLOUD_SDK_IAM_ENDPOINT", "")
        .env(
            "HUAWEICLOUD_SDK_CREDENTIALS_FILE",
            "/nonexistent/flotilla-docs/credentials",
        )
        .case("docs/src/*.md");
}

/// The body of the first ```` ```yaml ```` block that follows `marker` on `page`.
fn yaml_block_after(page: &str, marker: &str) -> Option<String> {
    let after_marker = &page[page.find(marker)? + marker.len()..];
    let body_start = after_marker.find("```yaml\n")? + "```yaml\n".len();
    let body = &after_marker[body_start..];
    let body_end = body.find("\n```")?;
    Some(format!("{}\n", &body[..body_end]))
}

#[test]
fn the_plan_references_example_is_the_plan_its_validate_example_checks() {
    let page = repository_file("docs/src/plan-reference.md");
    let example = repository_file("docs/examples/plan.yaml");
    let shown = yaml_block_after(&page, "<!-- the example plan: docs/examples/plan.yaml -->")
        .expect(
            "docs/src/plan-reference.md shows the example plan in a yaml block after its marker",
        );
    assert_eq!(
        shown, example,
        "the example plan shown in docs/src/plan-reference.md differs from docs/examples/plan.yaml"
    );
    assert!(
        page.contains(
            "$ HUAWEICLOUD_SDK_PROJECT_ID=0a1b2c3d flotilla validate docs/examples/plan.yaml"
        ),
        "docs/src/plan-reference.md validates its example plan in a console block"
    );
}

#[test]
fn the_readmes_example_plan_is_valid() {
    let readme = repository_file("README.md");
    let plan = yaml_block_after(&readme, "## Quick start")
        .expect("README.md shows a plan in a yaml block after its quick start");
    let folder = tempfile::tempdir().expect("a temporary folder");
    let path = folder.path().join("readme.yaml");
    std::fs::write(&path, plan).expect("the README's plan written to a temporary file");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_flotilla"))
        .arg("validate")
        .arg(&path)
        .output()
        .expect("flotilla runs");
    assert!(
        output.status.success(),
        "the README's plan is refused:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.ends_with(": ok: plan `readme`, 2 operation(s) in 2 wave(s)\n"),
        "{stdout}"
    );
}
