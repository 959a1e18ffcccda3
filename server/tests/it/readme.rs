//! The README and the docs beside it say true things about the repository: every path they
//! name exists, and every `clip-investigator` command they show names a subcommand and flags
//! the binary has (checked against the parser itself, as `--help` would list them), and the
//! status line claims, with a link, every feature a README section describes.

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

/// GitHub's anchor of a heading: lower case, punctuation but `-` and `_` dropped, spaces as `-`.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// The anchors of a Markdown text's headings.
fn anchors(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| l.starts_with('#'))
        .map(|l| anchor(l.trim_start_matches('#')))
        .collect()
}

/// README sections that describe no feature of their own (setup, settings, the sample).
const NOT_FEATURES: &[&str] = &["the-two-commands", "configuration", "tests", "sample-video"];

/// The status line's link targets, in its "Here" part and in its "Still to come" part.
fn status_links(readme: &str) -> (Vec<String>, Vec<String>) {
    let start = readme
        .find("**Status.**")
        .expect("README has a status line");
    let end = readme[start..]
        .find("\n\n")
        .map_or(readme.len(), |e| start + e);
    let status = &readme[start..end];
    let (here, to_come) = status
        .split_once("Still to come")
        .expect("the status line says what is still to come");
    let targets = |text: &str| -> Vec<String> {
        text.split("](")
            .skip(1)
            .filter_map(|rest| rest.split(')').next())
            .map(str::to_string)
            .collect()
    };
    (targets(here), targets(to_come))
}

/// What is wrong with the status line of `readme` (other files read by `read`): links to no
/// section, feature sections it does not claim, things "to come" that the README describes.
fn status_problems(readme: &str, read: impl Fn(&str) -> Option<String>) -> Vec<String> {
    let mut problems = Vec::new();
    let (here, to_come) = status_links(readme);
    // Every claim links where it is described, and that place exists.
    for target in here.iter().chain(&to_come) {
        let (file, fragment) = target.split_once('#').unwrap_or((target, ""));
        let text = if file.is_empty() {
            Some(readme.to_string())
        } else {
            read(file)
        };
        match text {
            None => problems.push(format!(
                "the status line links {target}, a file that is not there"
            )),
            Some(text)
                if !fragment.is_empty() && !anchors(&text).contains(&fragment.to_string()) =>
            {
                problems.push(format!(
                    "the status line links {target}, which has no such section"
                ))
            }
            Some(_) => {}
        }
    }
    // Every README section about a feature is claimed as here: a section that describes
    // something cannot sit beside a status line that calls it to come (or forgets it).
    let claimed: Vec<&str> = here.iter().filter_map(|t| t.strip_prefix('#')).collect();
    for line in readme.lines().filter(|l| l.starts_with("## ")) {
        let section = anchor(&line[3..]);
        if !NOT_FEATURES.contains(&section.as_str()) && !claimed.contains(&section.as_str()) {
            problems.push(format!(
                "README section {line:?} describes a feature the status line does not claim"
            ));
        }
    }
    // What is to come links only to measurements (what it would improve), never to a section
    // of the README, which would describe it as done.
    for target in to_come.iter().filter(|t| t.starts_with('#')) {
        problems.push(format!(
            "the status line calls {target} to come, but the README describes it"
        ));
    }
    problems
}

#[test]
fn the_status_line_claims_what_the_docs_describe_and_no_more() {
    let root = root();
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let problems = status_problems(&readme, |file| {
        std::fs::read_to_string(root.join(file)).ok()
    });
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn the_status_check_catches_an_unclaimed_section_a_dead_link_and_a_done_thing_to_come() {
    assert_eq!(
        anchor("Why this score (heatmaps)"),
        "why-this-score-heatmaps"
    );
    assert_eq!(anchor("Precision: int8"), "precision-int8");
    let docs = |file: &str| (file == "docs/x.md").then(|| "# X\n\n## B\n".to_string());
    let good = "**Status.** Here: [a](#a); [b](docs/x.md#b). Still to come: c ([m](docs/x.md#b)).\n\n## A\n\n## Tests\n";
    assert_eq!(status_problems(good, docs), Vec::<String>::new());
    let unclaimed = format!("{good}\n## Serving\n");
    let dead = good.replace("docs/x.md#b)", "docs/x.md#nowhere)");
    let done = good.replace("c ([m]", "[a](#a) ([m]");
    for (readme, expected) in [
        (unclaimed.as_str(), "\"## Serving\" describes a feature"),
        (
            dead.as_str(),
            "docs/x.md#nowhere, which has no such section",
        ),
        (done.as_str(), "calls #a to come"),
    ] {
        let problems = status_problems(readme, docs);
        assert!(
            problems.iter().any(|p| p.contains(expected)),
            "{expected}: {problems:#?}"
        );
    }
}
