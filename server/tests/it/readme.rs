//! The README and the docs beside it say true things about the repository: every path they
//! name exists, and every `clip-investigator` command they show names a subcommand and flags
//! the binary has (checked against the parser itself, as `--help` would list them).

use std::path::{Path, PathBuf};

use clap::CommandFactory;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// README.md and every Markdown file in docs/, with their text.
fn documents() -> Vec<(PathBuf, String)> {
    let root = root();
    let mut paths = vec![root.join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    paths.extend(docs);
    paths
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            (p, text)
        })
        .collect()
}

/// The folders at the top of the repository that a path in the docs may start with.
const TOP: &[&str] = &[
    "app/",
    "core/",
    "data/",
    "docs/",
    "embeddings/",
    "end2end/",
    "engine/",
    "frontend/",
    "scripts/",
    "server/",
    "store/",
    "style/",
    "testvideo/",
    ".ci/",
];

/// Repository paths in a text: `code spans` and link targets that start with a top folder.
fn paths_in(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    let spans = text.split('`').skip(1).step_by(2);
    let links = text
        .split("](")
        .skip(1)
        .filter_map(|rest| rest.split(')').next());
    for candidate in spans.chain(links) {
        let candidate = candidate.trim();
        // A path, not a command or a pattern: no spaces, no placeholders, no globs.
        if candidate.contains([' ', '*', '{', '<', '$', '|'])
            || candidate.contains("FINGERPRINT")
            || candidate.contains("NAME.")
            || candidate.contains("TARGET")
        {
            continue;
        }
        let path = candidate.split(['#', ':']).next().unwrap_or("");
        if TOP.iter().any(|top| path.starts_with(top)) {
            found.push(path.trim_end_matches(['.', ',']).to_string());
        }
    }
    found
}

#[test]
fn every_path_the_docs_name_exists() {
    let root = root();
    let mut missing = Vec::new();
    let mut checked = 0;
    for (doc, text) in documents() {
        for path in paths_in(&text) {
            checked += 1;
            if !root.join(&path).exists() {
                missing.push(format!("{}: {path}", doc.display()));
            }
        }
    }
    assert!(
        checked > 30,
        "only {checked} paths found: is the extraction broken?"
    );
    assert!(
        missing.is_empty(),
        "named but not in the repository:\n{}",
        missing.join("\n")
    );
}

/// Each `clip-investigator …` line of the docs: its words, up to the end of the line or span.
fn commands_in(text: &str) -> Vec<Vec<String>> {
    let mut commands = Vec::new();
    for line in text.lines() {
        // In a code block the line is the command; in prose, the code span holding it.
        let pieces: Vec<&str> = if line.trim_start().starts_with("clip-investigator ") {
            vec![line.trim_start()]
        } else {
            line.split('`')
                .skip(1)
                .step_by(2)
                .filter(|s| s.starts_with("clip-investigator "))
                .collect()
        };
        for piece in pieces {
            let words = piece
                .split('#')
                .next()
                .unwrap_or("")
                .split_whitespace()
                .skip(1)
                .map(str::to_string)
                .collect();
            commands.push(words);
        }
    }
    commands
}

/// The long flags a word names: `--a`, `[--a B]`, `(--a`, `--a=B`, `--a|--b`.
fn flags_in(word: &str) -> Vec<String> {
    word.split(['|', '(', ')', '[', ']', ','])
        .filter_map(|w| w.strip_prefix("--"))
        .map(|w| w.split('=').next().unwrap_or("").to_string())
        .filter(|w| !w.is_empty())
        .collect()
}

#[test]
fn every_command_the_docs_show_parses() {
    let cli = server::cli::Cli::command();
    let mut wrong = Vec::new();
    let mut checked = 0;
    for (doc, text) in documents() {
        for words in commands_in(&text) {
            let Some(first) = words.first() else { continue };
            // `clip-investigator --config …` is `serve`, the default.
            let name = if first.starts_with('-') {
                "serve"
            } else {
                first.as_str()
            };
            let Some(sub) = cli.find_subcommand(name) else {
                wrong.push(format!(
                    "{}: no subcommand `{name}` ({words:?})",
                    doc.display()
                ));
                continue;
            };
            let known: Vec<String> = sub
                .get_arguments()
                .chain(cli.get_arguments())
                .flat_map(|arg| {
                    let mut names: Vec<String> =
                        arg.get_long().map(str::to_string).into_iter().collect();
                    names.extend(
                        arg.get_all_aliases()
                            .unwrap_or_default()
                            .into_iter()
                            .map(str::to_string),
                    );
                    names.extend(
                        arg.get_visible_aliases()
                            .unwrap_or_default()
                            .into_iter()
                            .map(str::to_string),
                    );
                    names
                })
                .chain(["help".to_string(), "version".to_string()])
                .collect();
            // Subcommands of a subcommand (`cache list|clear`).
            let nested: Vec<&str> = sub.get_subcommands().map(|s| s.get_name()).collect();
            for word in &words {
                for flag in flags_in(word) {
                    checked += 1;
                    if !known.contains(&flag) {
                        wrong.push(format!("{}: `{name}` has no --{flag}", doc.display()));
                    }
                }
                if !nested.is_empty()
                    && word.chars().all(|c| c.is_ascii_lowercase() || c == '|')
                    && word != name
                {
                    for part in word.split('|') {
                        if !nested.contains(&part) {
                            wrong.push(format!(
                                "{}: `{name}` has no subcommand {part}",
                                doc.display()
                            ));
                        }
                    }
                }
            }
        }
    }
    assert!(
        checked > 20,
        "only {checked} flags found: is the extraction broken?"
    );
    assert!(
        wrong.is_empty(),
        "the docs show commands the binary does not take:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn the_checks_catch_what_they_look_for() {
    assert_eq!(
        paths_in("see `engine/src/sync.rs` and [x](docs/measured.md)"),
        ["engine/src/sync.rs", "docs/measured.md"]
    );
    assert!(paths_in("`clip-investigator index VIDEO` and `a/b`").is_empty());
    assert_eq!(flags_in("[--model"), ["model"]);
    assert_eq!(flags_in("(--text"), ["text"]);
    assert_eq!(flags_in("--format=csv"), ["format"]);
    assert_eq!(
        commands_in("run `clip-investigator index V --json` now")[0],
        ["index", "V", "--json"]
    );
}
