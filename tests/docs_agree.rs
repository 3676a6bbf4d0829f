//! The README (the front page on a code host) and the crate-root docs (the front page on
//! docs.rs) list the same features, the ones `Cargo.toml` declares, and the same layers.

use std::collections::BTreeSet;

fn read(path: &str) -> String {
    std::fs::read_to_string(format!("{}/{path}", env!("CARGO_MANIFEST_DIR"))).expect(path)
}

/// The backticked first cells of the table under `heading` (a line equal to it).
fn first_cells(text: &str, heading: &str) -> BTreeSet<String> {
    let after = text
        .lines()
        .skip_while(|l| l.trim() != heading)
        .skip(1)
        .skip_while(|l| !l.trim_start_matches("//!").trim().starts_with('|'));
    after
        .map(|l| l.trim_start_matches("//!").trim().to_owned())
        .take_while(|l| l.starts_with('|'))
        .filter_map(|row| {
            let cell = row.split('|').nth(1)?.trim().to_owned();
            let name = cell.strip_prefix('`')?.strip_suffix('`')?;
            Some(name.to_owned())
        })
        .collect()
}

/// Every `...Layer` name the text mentions.
fn layers(text: &str) -> BTreeSet<String> {
    text.split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| w.ends_with("Layer") && w.len() > "Layer".len())
        .filter(|w| w.starts_with(|c: char| c.is_ascii_uppercase()))
        .map(str::to_owned)
        .collect()
}

#[test]
fn readme_and_crate_docs_list_the_features_cargo_toml_declares() {
    let manifest = read("Cargo.toml");
    let declared: BTreeSet<String> = manifest
        .lines()
        .skip_while(|l| l.trim() != "[features]")
        .skip(1)
        .take_while(|l| !l.starts_with('['))
        .filter_map(|l| l.split_once('=').map(|(name, _)| name.trim().to_owned()))
        .filter(|name| !name.starts_with('#') && name != "default")
        .collect();
    let readme = first_cells(&read("README.md"), "## Features");
    let crate_docs = first_cells(&read("src/lib.rs"), "//! # Features");
    assert!(declared.len() >= 8, "{declared:?}");
    assert_eq!(readme, declared, "README's feature table");
    assert_eq!(crate_docs, declared, "the crate root's feature table");
}

#[test]
fn the_crate_docs_name_every_layer_the_readme_names() {
    let readme = layers(&read("README.md"));
    let crate_root: String = read("src/lib.rs")
        .lines()
        .filter(|l| l.starts_with("//!"))
        .collect::<Vec<_>>()
        .join("\n");
    let crate_docs = layers(&crate_root);
    for layer in [
        "AuthLayer",
        "RequireLayer",
        "TokenConcurrencyLimitLayer",
        "RateLimitLayer",
    ] {
        assert!(readme.contains(layer), "README lacks {layer}");
    }
    let missing: Vec<_> = readme.difference(&crate_docs).collect();
    assert!(
        missing.is_empty(),
        "the crate root does not name {missing:?}"
    );
}

#[test]
fn the_readme_is_a_front_page() {
    let lines = read("README.md").lines().count();
    assert!(lines <= 250, "README.md has {lines} lines");
}
