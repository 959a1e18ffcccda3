//! Ground truth for a video: segments where a prompt is true, and spans left out of every
//! metric (transitions, frames nobody can judge). Independent of any model.
//!
//! The file is a human-editable CSV, `prompt,start_frame,end_frame` (inclusive frames), kept
//! beside the video's caches; `prompt,start_time,end_time` (seconds, or `HH:MM:SS.mmm`) is
//! accepted on import and turned into frames by the engine with the video's frame index. A row
//! whose prompt is [`IGNORE`] marks frames left out.
//!
//! Invariants of [`Labels`]: segments are sorted by prompt, then start; no two segments of one
//! prompt overlap or touch (they are merged, and [`Labels::normalize`] says so); every segment
//! has `start <= end`.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

/// The prompt name of segments left out of every metric.
pub const IGNORE: &str = "ignore";

/// Largest label file read or accepted, in bytes (tens of thousands of segments).
pub const MAX_LABEL_FILE_BYTES: usize = 1 << 20;

/// The header the files are written with.
pub const FRAME_HEADER: &str = "prompt,start_frame,end_frame";

/// Frames `start..=end` where `prompt` is true (or, for [`IGNORE`], left out).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Segment {
    pub prompt: String,
    pub start: u64,
    /// Inclusive.
    pub end: u64,
}

impl Segment {
    pub fn frames(&self) -> u64 {
        self.end - self.start + 1
    }

    pub fn is_ignore(&self) -> bool {
        self.prompt == IGNORE
    }
}

/// A video's labels.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Labels {
    pub segments: Vec<Segment>,
}

impl Labels {
    /// The prompts with labels (not [`IGNORE`]), sorted.
    pub fn prompts(&self) -> Vec<String> {
        let set: BTreeSet<&str> = self
            .segments
            .iter()
            .filter(|s| !s.is_ignore())
            .map(|s| s.prompt.as_str())
            .collect();
        set.into_iter().map(str::to_string).collect()
    }

    /// The spans of `prompt` (sorted, disjoint once normalised).
    pub fn spans(&self, prompt: &str) -> Vec<(u64, u64)> {
        self.segments
            .iter()
            .filter(|s| s.prompt == prompt)
            .map(|s| (s.start, s.end))
            .collect()
    }

    /// The frames left out of every metric, as spans.
    pub fn ignored(&self) -> Vec<(u64, u64)> {
        self.spans(IGNORE)
    }

    /// Sorts, and merges the segments of one prompt that overlap or touch. Returns a note for
    /// each merge (the file is human-edited: the user should know what changed).
    pub fn normalize(&mut self) -> Vec<String> {
        self.segments.sort();
        let mut notes = Vec::new();
        let mut merged: Vec<Segment> = Vec::with_capacity(self.segments.len());
        for segment in self.segments.drain(..) {
            match merged.last_mut() {
                Some(last) if last.prompt == segment.prompt && segment.start <= last.end + 1 => {
                    if segment.start <= last.end {
                        notes.push(format!(
                            "{:?}: frames {}-{} and {}-{} overlap; merged into {}-{}",
                            segment.prompt,
                            last.start,
                            last.end,
                            segment.start,
                            segment.end,
                            last.start,
                            last.end.max(segment.end)
                        ));
                    }
                    last.end = last.end.max(segment.end);
                }
                _ => merged.push(segment),
            }
        }
        self.segments = merged;
        notes
    }

    /// Adds a segment (merging it with any it overlaps or touches).
    pub fn add(&mut self, segment: Segment) -> Vec<String> {
        self.segments.push(segment);
        self.normalize()
    }

    /// Removes the segment equal to `segment`; whether there was one.
    pub fn remove(&mut self, segment: &Segment) -> bool {
        let before = self.segments.len();
        self.segments.retain(|s| s != segment);
        self.segments.len() != before
    }

    /// The file's text: [`FRAME_HEADER`], then one row per segment, fields quoted where they
    /// need it (RFC 4180).
    pub fn to_csv(&self) -> String {
        let mut out = String::from(FRAME_HEADER);
        out.push('\n');
        for s in &self.segments {
            out.push_str(&format!("{},{},{}\n", csv_field(&s.prompt), s.start, s.end));
        }
        out
    }
}

/// Quotes a CSV field when it needs it (RFC 4180).
pub fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) || text != text.trim() {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

/// Where a row's segment starts or ends, as the file gives it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Bound {
    Frame(u64),
    /// Seconds from frame 0's presentation time.
    Seconds(f64),
}

/// One row of a label file, before times are turned into frames.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    /// 1-based line of the file.
    pub line: usize,
    pub prompt: String,
    pub start: Bound,
    pub end: Bound,
}

/// Why a label file (or an edit) is refused; every message names the line it is about.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum LabelError {
    #[error(
        "the label file is {bytes} bytes; at most {MAX_LABEL_FILE_BYTES} (is it a label file?)"
    )]
    TooLarge { bytes: usize },
    #[error("line {line}: the label file is not UTF-8 text (save it as UTF-8 CSV)")]
    NotUtf8 { line: usize },
    #[error("the label file is empty: it needs the header {FRAME_HEADER} (or prompt,start_time,end_time)")]
    Empty,
    #[error("line 1: unknown column {column:?}; the header is {FRAME_HEADER} (or prompt,start_time,end_time)")]
    UnknownColumn { column: String },
    #[error("line 1: the header needs the columns prompt, and start_frame,end_frame or start_time,end_time; it has {found}")]
    MissingColumn { found: String },
    #[error("line {line}: {found} fields; a row is prompt,start,end")]
    FieldCount { line: usize, found: usize },
    #[error("line {line}: an unclosed quote")]
    Quote { line: usize },
    #[error("line {line}: the prompt is empty")]
    EmptyPrompt { line: usize },
    #[error("line {line}: {column} is {value:?}, not {expected}")]
    BadNumber {
        line: usize,
        column: &'static str,
        value: String,
        expected: &'static str,
    },
    #[error("line {line}: the segment ends (frame {end}) before it starts (frame {start})")]
    EndBeforeStart { line: usize, start: u64, end: u64 },
    #[error("line {line}: frame {frame} is outside the video, whose frames are 0 to {last}")]
    OutsideVideo { line: usize, frame: u64, last: u64 },
    #[error("line {line}: the labels file holds times; it is kept in frames (import a file in times with `clip-investigator labels VIDEO --import FILE`, or the page's Import CSV)")]
    TimesInStoredFile { line: usize },
    #[error(
        "line {line}: the prompt {prompt:?} is not one of the prompts being labelled ({known})"
    )]
    UnknownPrompt {
        line: usize,
        prompt: String,
        known: String,
    },
}

/// Splits one CSV record (RFC 4180 quoting); `None` for an unclosed quote.
fn fields(line: &str) -> Option<Vec<String>> {
    let mut out = Vec::new();
    let mut field = String::new();
    let mut chars = line.chars().peekable();
    let mut quoted = false;
    let mut at_start = true;
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted => {
                if chars.peek() == Some(&'"') {
                    chars.next();
                    field.push('"');
                } else {
                    quoted = false;
                }
            }
            '"' if at_start => {
                quoted = true;
                at_start = false;
            }
            ',' if !quoted => {
                out.push(std::mem::take(&mut field));
                at_start = true;
            }
            c => {
                field.push(c);
                at_start = false;
            }
        }
    }
    if quoted {
        return None;
    }
    out.push(field);
    Some(out)
}

/// `12.5`, `75.0`, `01:02.500` or `1:02:03.250`: seconds.
pub fn parse_seconds(text: &str) -> Option<f64> {
    let mut total = 0.0;
    for part in text.trim().split(':') {
        let value: f64 = part.parse().ok()?;
        if !(value.is_finite() && value >= 0.0) {
            return None;
        }
        total = total * 60.0 + value;
    }
    Some(total).filter(|_| text.split(':').count() <= 3)
}

/// The rows of a label file. Checks everything that does not need the video: size, encoding,
/// header, quoting, numbers, order of the ends, and the prompts (when `known` is given, every
/// row's prompt must be one of them, or [`IGNORE`]).
pub fn parse_csv(bytes: &[u8], known: Option<&[String]>) -> Result<Vec<Row>, LabelError> {
    if bytes.len() > MAX_LABEL_FILE_BYTES {
        return Err(LabelError::TooLarge { bytes: bytes.len() });
    }
    let text = std::str::from_utf8(bytes).map_err(|e| LabelError::NotUtf8 {
        line: 1 + bytes[..e.valid_up_to()]
            .iter()
            .filter(|&&b| b == b'\n')
            .count(),
    })?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    let (_, header) = lines.next().ok_or(LabelError::Empty)?;
    let columns: Vec<String> = fields(header)
        .ok_or(LabelError::Quote { line: 1 })?
        .iter()
        .map(|c| c.trim().to_ascii_lowercase())
        .collect();
    for column in &columns {
        if ![
            "prompt",
            "start_frame",
            "end_frame",
            "start_time",
            "end_time",
        ]
        .contains(&column.as_str())
        {
            return Err(LabelError::UnknownColumn {
                column: column.clone(),
            });
        }
    }
    let place = |name: &str| columns.iter().position(|c| c == name);
    let frames = (place("start_frame"), place("end_frame"));
    let times = (place("start_time"), place("end_time"));
    let (prompt_at, start_at, end_at, in_frames) = match (place("prompt"), frames, times) {
        (Some(p), (Some(s), Some(e)), (None, None)) => (p, s, e, true),
        (Some(p), (None, None), (Some(s), Some(e))) => (p, s, e, false),
        _ => {
            return Err(LabelError::MissingColumn {
                found: columns.join(","),
            })
        }
    };
    let mut rows = Vec::new();
    for (index, text) in lines {
        let line = index + 1;
        let values = fields(text).ok_or(LabelError::Quote { line })?;
        if values.len() != columns.len() {
            return Err(LabelError::FieldCount {
                line,
                found: values.len(),
            });
        }
        let prompt = values[prompt_at].trim().to_string();
        if prompt.is_empty() {
            return Err(LabelError::EmptyPrompt { line });
        }
        if let Some(known) = known {
            if prompt != IGNORE && !known.contains(&prompt) {
                return Err(LabelError::UnknownPrompt {
                    line,
                    prompt,
                    known: known.join(", "),
                });
            }
        }
        let bound = |at: usize, column: &'static str| -> Result<Bound, LabelError> {
            let value = values[at].trim();
            let bad = || LabelError::BadNumber {
                line,
                column,
                value: value.chars().take(40).collect(),
                expected: if in_frames {
                    "a frame number (0, 1, 2, …)"
                } else {
                    "seconds (12.5) or HH:MM:SS.mmm"
                },
            };
            if in_frames {
                value.parse::<u64>().map(Bound::Frame).map_err(|_| bad())
            } else {
                parse_seconds(value).map(Bound::Seconds).ok_or_else(bad)
            }
        };
        let start = bound(
            start_at,
            if in_frames {
                "start_frame"
            } else {
                "start_time"
            },
        )?;
        let end = bound(end_at, if in_frames { "end_frame" } else { "end_time" })?;
        if let (Bound::Frame(s), Bound::Frame(e)) = (start, end) {
            if e < s {
                return Err(LabelError::EndBeforeStart {
                    line,
                    start: s,
                    end: e,
                });
            }
        }
        rows.push(Row {
            line,
            prompt,
            start,
            end,
        });
    }
    Ok(rows)
}

/// Rows whose ends are frames already, as segments, checked against a video of `frames`
/// frames; a time bound is turned into a frame by `frame_at` (the engine's frame index).
pub fn segments_of(
    rows: &[Row],
    frames: u64,
    frame_at: impl Fn(Bound, bool) -> u64,
) -> Result<Labels, LabelError> {
    let last = frames.saturating_sub(1);
    let mut labels = Labels::default();
    for row in rows {
        let start = frame_at(row.start, false);
        let end = frame_at(row.end, true);
        for frame in [start, end] {
            if frame >= frames {
                return Err(LabelError::OutsideVideo {
                    line: row.line,
                    frame,
                    last,
                });
            }
        }
        if end < start {
            return Err(LabelError::EndBeforeStart {
                line: row.line,
                start,
                end,
            });
        }
        labels.segments.push(Segment {
            prompt: row.prompt.clone(),
            start,
            end,
        });
    }
    Ok(labels)
}

/// A change the page makes to a video's labels.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum LabelEdit {
    /// A new segment (merged with any of its prompt it overlaps).
    Add(Segment),
    /// A segment removed, or replaced by another (its ends adjusted).
    Replace { old: Segment, new: Option<Segment> },
    /// A CSV (frames or times) merged into the labels, or replacing them.
    Import { csv: String, replace: bool },
}

/// A video's labels as the page gets them after a read or a change, with what the change
/// merged.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LabelsAnswer {
    pub labels: Labels,
    pub notes: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames_only(bound: Bound, _end: bool) -> u64 {
        match bound {
            Bound::Frame(n) => n,
            Bound::Seconds(s) => (s * 10.0).round() as u64,
        }
    }

    #[test]
    fn a_file_reads_back_as_it_was_written() {
        let mut labels = Labels {
            segments: vec![
                Segment {
                    prompt: "a door, red".into(),
                    start: 10,
                    end: 20,
                },
                Segment {
                    prompt: IGNORE.into(),
                    start: 30,
                    end: 31,
                },
                Segment {
                    prompt: "stairs".into(),
                    start: 0,
                    end: 4,
                },
            ],
        };
        assert!(labels.normalize().is_empty());
        let text = labels.to_csv();
        assert!(text.starts_with("prompt,start_frame,end_frame\n\"a door, red\",10,20\n"));
        let rows = parse_csv(text.as_bytes(), None).unwrap();
        let again = segments_of(&rows, 100, frames_only).unwrap();
        assert_eq!(again, labels);
        assert_eq!(labels.prompts(), vec!["a door, red", "stairs"]);
        assert_eq!(labels.ignored(), vec![(30, 31)]);
    }

    #[test]
    fn overlapping_segments_of_a_prompt_are_merged_and_said() {
        let mut labels = Labels::default();
        let seg = |p: &str, start, end| Segment {
            prompt: p.into(),
            start,
            end,
        };
        assert!(labels.add(seg("dog", 10, 20)).is_empty());
        assert!(
            labels.add(seg("dog", 21, 25)).is_empty(),
            "touching: joined, nothing to say"
        );
        let notes = labels.add(seg("dog", 5, 12));
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(notes[0].contains("overlap"), "{notes:?}");
        assert!(
            labels.add(seg("cat", 8, 9)).is_empty(),
            "other prompts are independent"
        );
        assert_eq!(labels.spans("dog"), vec![(5, 25)]);
        assert!(labels.remove(&seg("cat", 8, 9)));
        assert!(!labels.remove(&seg("cat", 8, 9)));
    }

    #[test]
    fn times_are_seconds_or_clock_readings() {
        assert_eq!(parse_seconds("12.5"), Some(12.5));
        assert_eq!(parse_seconds("01:02.500"), Some(62.5));
        assert_eq!(parse_seconds("1:02:03.250"), Some(3723.25));
        for bad in ["", "-1", "a", "1:2:3:4", "nan", "inf"] {
            assert_eq!(parse_seconds(bad), None, "{bad:?}");
        }
        let rows = parse_csv(b"prompt,start_time,end_time\nwall,0:01.0,2.5\n", None).unwrap();
        assert_eq!(rows[0].start, Bound::Seconds(1.0));
        assert_eq!(rows[0].end, Bound::Seconds(2.5));
        let labels = segments_of(&rows, 100, frames_only).unwrap();
        assert_eq!(labels.spans("wall"), vec![(10, 25)]);
    }

    #[test]
    fn bad_files_are_refused_naming_the_line() {
        let refused = |text: &[u8]| parse_csv(text, None).unwrap_err().to_string();
        assert!(refused(b"prompt,begin,end\n").contains("unknown column \"begin\""));
        assert!(refused(b"prompt,start_frame\n").contains("needs the columns"));
        assert!(refused(b"").contains("empty"));
        assert!(refused(b"prompt,start_frame,end_frame\nwall,5,3\n").starts_with("line 2:"));
        assert!(
            refused(b"prompt,start_frame,end_frame\nwall,x,3\n").contains("line 2: start_frame")
        );
        assert!(refused(b"prompt,start_frame,end_frame\nwall,1\n").contains("line 2: 2 fields"));
        assert!(refused(b"prompt,start_frame,end_frame\n\"wall,1,2\n")
            .contains("line 2: an unclosed quote"));
        assert!(refused(b"prompt,start_frame,end_frame\n,1,2\n")
            .contains("line 2: the prompt is empty"));
        let latin1 = b"prompt,start_frame,end_frame\nwall,1,2\ncaf\xe9,1,2\n";
        assert_eq!(
            refused(latin1),
            "line 3: the label file is not UTF-8 text (save it as UTF-8 CSV)"
        );
        let huge = vec![b'a'; MAX_LABEL_FILE_BYTES + 1];
        assert!(refused(&huge).contains("bytes; at most"));
        let known = vec!["wall".to_string()];
        let unknown = parse_csv(
            b"prompt,start_frame,end_frame\nwall,1,2\ndoor,1,2\nignore,3,4\n",
            Some(&known),
        )
        .unwrap_err()
        .to_string();
        assert!(
            unknown.starts_with("line 3: the prompt \"door\""),
            "{unknown}"
        );
        let rows = parse_csv(b"prompt,start_frame,end_frame\nwall,90,120\n", None).unwrap();
        let outside = segments_of(&rows, 100, frames_only)
            .unwrap_err()
            .to_string();
        assert_eq!(
            outside,
            "line 2: frame 120 is outside the video, whose frames are 0 to 99"
        );
    }

    #[test]
    fn headers_in_any_order_and_quoted_fields_read() {
        let rows = parse_csv(
            "\u{feff}end_frame,prompt,start_frame\r\n\r\n7,\"say \"\"hi\"\"\",3\r\n".as_bytes(),
            None,
        )
        .unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].prompt, "say \"hi\"");
        assert_eq!(
            (rows[0].start, rows[0].end),
            (Bound::Frame(3), Bound::Frame(7))
        );
        assert_eq!(rows[0].line, 3);
    }
}
