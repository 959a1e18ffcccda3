//! Reading a benchmark's annotations: QVHighlights' JSON Lines (also the layout Lighthouse
//! converts Charades-STA, ActivityNet Captions and TACoS to) and Charades-STA's own text
//! format (`VID START END##SENTENCE`, one query a line).
//!
//! Invariants:
//! - a broken file (not UTF-8, a line that is not a JSON object, a field of the wrong type, a
//!   qid given twice) is an error naming its line; a query the evaluator cannot score (no
//!   window, a reversed, empty or negative window, one past the video's end, saliency lists
//!   that disagree with its clips) is listed as skipped with its line and why, never guessed;
//! - windows stay in seconds here; matching them to a video's frames is the engine's.

use std::collections::HashMap;

use serde_json::Value;

use super::GroundTruth;

/// Annotation files larger than this are refused (QVHighlights' val is under 1 MB).
pub const MAX_ANNOTATION_BYTES: usize = 256 * 1024 * 1024;

/// How an annotation file is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// JSON Lines: `qid`, `query`, `vid`, `duration`, `relevant_windows`, optional
    /// `relevant_clip_ids` and `saliency_scores` (QVHighlights, Lighthouse).
    QvHighlights,
    /// `VID START END##SENTENCE` a line (Charades-STA); the qid is the line's number from 0.
    Charades,
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "qvhighlights" | "jsonl" => Ok(Self::QvHighlights),
            "charades" => Ok(Self::Charades),
            other => Err(format!(
                "unknown annotation format {other:?}: use qvhighlights (JSON Lines) or charades"
            )),
        }
    }
}

/// One query as annotated.
#[derive(Clone, Debug, PartialEq)]
pub struct Query {
    pub qid: String,
    pub query: String,
    pub vid: String,
    /// The video's length as annotated (Charades-STA gives none: the video's own is used).
    pub duration: Option<f64>,
    pub windows: Vec<[f64; 2]>,
    pub relevant_clip_ids: Vec<usize>,
    pub saliency_scores: Vec<[u8; 3]>,
    /// The line it came from (from 1).
    pub line: usize,
}

impl Query {
    /// The query for the evaluator, on a video `duration` seconds long.
    pub fn truth(&self, duration: f64) -> GroundTruth {
        GroundTruth {
            qid: self.qid.clone(),
            duration: self.duration.unwrap_or(duration),
            windows: self.windows.clone(),
            relevant_clip_ids: self.relevant_clip_ids.clone(),
            saliency_scores: self.saliency_scores.clone(),
        }
    }
}

/// A query left out, and why.
#[derive(Clone, Debug, PartialEq)]
pub struct Skipped {
    pub line: usize,
    pub qid: String,
    pub reason: String,
}

/// What an annotation file holds.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Annotations {
    pub queries: Vec<Query>,
    pub skipped: Vec<Skipped>,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum AnnotationError {
    #[error("the annotation file has {bytes} bytes; at most {MAX_ANNOTATION_BYTES} are read")]
    TooLarge { bytes: usize },
    #[error("line {line} is not UTF-8 text: is this an annotation file?")]
    NotText { line: usize },
    #[error("line {line}: {reason}")]
    Line { line: usize, reason: String },
    #[error("line {line}: qid {qid} is already on line {first}")]
    DuplicateQid {
        line: usize,
        qid: String,
        first: usize,
    },
    #[error("the file holds no query")]
    Empty,
}

/// Reads annotations written in `format`.
pub fn parse(bytes: &[u8], format: Format) -> Result<Annotations, AnnotationError> {
    if bytes.len() > MAX_ANNOTATION_BYTES {
        return Err(AnnotationError::TooLarge { bytes: bytes.len() });
    }
    let mut annotations = Annotations::default();
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut number = 0;
    for (index, raw) in bytes.split(|&b| b == b'\n').enumerate() {
        let line = index + 1;
        let text = std::str::from_utf8(raw).map_err(|_| AnnotationError::NotText { line })?;
        let text = text.trim_start_matches('\u{feff}').trim();
        if text.is_empty() {
            continue;
        }
        let parsed = match format {
            Format::QvHighlights => json_query(text, line)?,
            Format::Charades => {
                let parsed = charades_query(text, line, number)?;
                number += 1;
                parsed
            }
        };
        if let Some(&first) = seen.get(&parsed.qid) {
            return Err(AnnotationError::DuplicateQid {
                line,
                qid: parsed.qid,
                first,
            });
        }
        seen.insert(parsed.qid.clone(), line);
        match unscorable(&parsed) {
            Some(reason) => annotations.skipped.push(Skipped {
                line,
                qid: parsed.qid,
                reason,
            }),
            None => annotations.queries.push(parsed),
        }
    }
    if annotations.queries.is_empty() && annotations.skipped.is_empty() {
        return Err(AnnotationError::Empty);
    }
    Ok(annotations)
}

fn bad(line: usize, reason: impl Into<String>) -> AnnotationError {
    AnnotationError::Line {
        line,
        reason: reason.into(),
    }
}

fn json_query(text: &str, line: usize) -> Result<Query, AnnotationError> {
    let value: Value =
        serde_json::from_str(text).map_err(|e| bad(line, format!("not valid JSON ({e})")))?;
    let row = value
        .as_object()
        .ok_or_else(|| bad(line, "not a JSON object"))?;
    let field = |name: &str| {
        row.get(name)
            .ok_or_else(|| bad(line, format!("no \"{name}\"")))
    };
    let qid = match field("qid")? {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        _ => return Err(bad(line, "\"qid\" is neither a number nor a string")),
    };
    let text_of = |name: &str| -> Result<String, AnnotationError> {
        field(name)?
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| bad(line, format!("\"{name}\" is not a string")))
    };
    let number = |v: &Value, what: &str| {
        v.as_f64()
            .ok_or_else(|| bad(line, format!("{what} is not a number")))
    };
    let list = |v: &'_ Value, what: &str| -> Result<Vec<Value>, AnnotationError> {
        v.as_array()
            .cloned()
            .ok_or_else(|| bad(line, format!("{what} is not a list")))
    };
    let duration = match row.get("duration") {
        None | Some(Value::Null) => None,
        Some(v) => Some(number(v, "\"duration\"")?),
    };
    let mut windows = Vec::new();
    for w in list(field("relevant_windows")?, "\"relevant_windows\"")? {
        let pair = list(&w, "a relevant window")?;
        if pair.len() != 2 {
            return Err(bad(line, "a relevant window is not [start, end]"));
        }
        windows.push([
            number(&pair[0], "a window's start")?,
            number(&pair[1], "a window's end")?,
        ]);
    }
    let mut relevant_clip_ids = Vec::new();
    if let Some(ids) = row.get("relevant_clip_ids") {
        for id in list(ids, "\"relevant_clip_ids\"")? {
            let id = id
                .as_u64()
                .ok_or_else(|| bad(line, "a relevant clip id is not a whole number ≥ 0"))?;
            relevant_clip_ids
                .push(usize::try_from(id).map_err(|_| bad(line, "a clip id is too large"))?);
        }
    }
    let mut saliency_scores = Vec::new();
    if let Some(scores) = row.get("saliency_scores") {
        for s in list(scores, "\"saliency_scores\"")? {
            let three = list(&s, "a clip's saliency scores")?;
            let mut clip = [0u8; 3];
            if three.len() != 3 {
                return Err(bad(line, "a clip's saliency scores are not three numbers"));
            }
            for (slot, v) in clip.iter_mut().zip(&three) {
                *slot = v
                    .as_u64()
                    .filter(|&x| x <= 4)
                    .ok_or_else(|| bad(line, "a saliency score is not 0, 1, 2, 3 or 4"))?
                    as u8;
            }
            saliency_scores.push(clip);
        }
    }
    Ok(Query {
        qid,
        query: text_of("query")?,
        vid: text_of("vid")?,
        duration,
        windows,
        relevant_clip_ids,
        saliency_scores,
        line,
    })
}

fn charades_query(text: &str, line: usize, number: usize) -> Result<Query, AnnotationError> {
    let (head, sentence) = text
        .split_once("##")
        .ok_or_else(|| bad(line, "not \"VID START END##SENTENCE\""))?;
    let parts: Vec<&str> = head.split_whitespace().collect();
    let [vid, start, end] = parts[..] else {
        return Err(bad(line, "not \"VID START END##SENTENCE\""));
    };
    let seconds = |s: &str| {
        s.parse::<f64>()
            .ok()
            .filter(|v| v.is_finite())
            .ok_or_else(|| bad(line, format!("{s:?} is not a number of seconds")))
    };
    Ok(Query {
        qid: number.to_string(),
        query: sentence.trim().to_string(),
        vid: vid.to_string(),
        duration: None,
        windows: vec![[seconds(start)?, seconds(end)?]],
        relevant_clip_ids: Vec::new(),
        saliency_scores: Vec::new(),
        line,
    })
}

/// Why the evaluator could not score a query as written, if it could not.
fn unscorable(q: &Query) -> Option<String> {
    if q.query.trim().is_empty() {
        return Some("the query text is empty".into());
    }
    if let Some(d) = q.duration {
        if !(d.is_finite() && d > 0.0) {
            return Some(format!("duration {d} is not a length in seconds"));
        }
    }
    if q.windows.is_empty() {
        return Some("no relevant window".into());
    }
    for &[start, end] in &q.windows {
        if !(start.is_finite() && end.is_finite()) || start < 0.0 {
            return Some(format!("window [{start}, {end}] starts before the video"));
        }
        if end <= start {
            return Some(format!("window [{start}, {end}] is reversed or empty"));
        }
        if let Some(d) = q.duration {
            if end > d {
                return Some(format!(
                    "window [{start}, {end}] ends after the video's {d} s"
                ));
            }
        }
    }
    if q.relevant_clip_ids.len() != q.saliency_scores.len() {
        return Some(format!(
            "{} relevant clips but {} saliency scores",
            q.relevant_clip_ids.len(),
            q.saliency_scores.len()
        ));
    }
    if let (Some(d), Some(&last)) = (q.duration, q.relevant_clip_ids.iter().max()) {
        let clips = (d / 2.0) as usize;
        if last >= clips {
            return Some(format!(
                "clip {last} is past the end of the video's {clips} clips of 2 s"
            ));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROW: &str = r#"{"qid": 7803, "query": "Man in gray top walks from outside to inside.", "duration": 150, "vid": "RoripwjYFp8_360.0_510.0", "relevant_clip_ids": [13, 14, 15, 16, 17], "saliency_scores": [[4, 4, 2], [3, 4, 2], [2, 2, 3], [2, 2, 2], [0, 1, 3]], "relevant_windows": [[26, 36]]}"#;

    #[test]
    fn a_qvhighlights_line_is_read_whole() {
        let a = parse(ROW.as_bytes(), Format::QvHighlights).unwrap();
        assert_eq!(a.skipped, []);
        let q = &a.queries[0];
        assert_eq!(
            (q.qid.as_str(), q.vid.as_str(), q.duration),
            ("7803", "RoripwjYFp8_360.0_510.0", Some(150.0))
        );
        assert_eq!(q.windows, [[26.0, 36.0]]);
        assert_eq!(q.relevant_clip_ids, [13, 14, 15, 16, 17]);
        assert_eq!(q.saliency_scores[4], [0, 1, 3]);
        // Lighthouse's layout without saliency.
        let plain = r#"{"qid": "a1", "query": "a person opens a door", "vid": "3MSZA", "duration": 30.9, "relevant_windows": [[0.0, 6.9]]}"#;
        let a = parse(plain.as_bytes(), Format::QvHighlights).unwrap();
        assert_eq!(a.queries[0].qid, "a1");
        assert!(a.queries[0].saliency_scores.is_empty());
    }

    #[test]
    fn charades_sta_lines_are_read_and_numbered() {
        let text = "3MSZA 24.3 30.4##person turn a light on.\n\n3MSZA 0.0 6.9##a person is opening the door.\n";
        let a = parse(text.as_bytes(), Format::Charades).unwrap();
        assert_eq!(a.queries.len(), 2);
        assert_eq!(a.queries[1].qid, "1");
        assert_eq!(a.queries[1].line, 3);
        assert_eq!(a.queries[0].query, "person turn a light on.");
        assert_eq!(a.queries[0].windows, [[24.3, 30.4]]);
        assert_eq!(a.queries[0].duration, None);
        assert_eq!(a.queries[0].truth(32.0).duration, 32.0);
    }

    #[test]
    fn broken_files_are_refused_by_line() {
        let error = |text: &[u8], format| parse(text, format).unwrap_err().to_string();
        let two = format!("{ROW}\n{{\"qid\": 1,");
        assert!(error(two.as_bytes(), Format::QvHighlights).starts_with("line 2: not valid JSON"));
        assert!(error(b"[1, 2]", Format::QvHighlights).contains("line 1: not a JSON object"));
        let twice = format!("{ROW}\n{ROW}");
        assert_eq!(
            error(twice.as_bytes(), Format::QvHighlights),
            "line 2: qid 7803 is already on line 1"
        );
        assert_eq!(
            error(b"v 1 2##ok\n\xff\xfe", Format::Charades),
            "line 2 is not UTF-8 text: is this an annotation file?"
        );
        assert!(error(b"vid 1 2 no hashes", Format::Charades).contains("line 1: not \"VID"));
        assert!(error(b"vid one 2##x", Format::Charades).contains("\"one\" is not a number"));
        let no_vid = ROW.replace("\"vid\"", "\"video\"");
        assert!(error(no_vid.as_bytes(), Format::QvHighlights).contains("no \"vid\""));
        let score_5 = ROW.replace("[0, 1, 3]", "[0, 1, 5]");
        assert!(error(score_5.as_bytes(), Format::QvHighlights).contains("not 0, 1, 2, 3 or 4"));
        assert_eq!(error(b"\n\n", Format::Charades), "the file holds no query");
        assert!("tsv"
            .parse::<Format>()
            .unwrap_err()
            .contains("qvhighlights"));
    }

    #[test]
    fn queries_the_evaluator_cannot_score_are_listed_with_why() {
        let cases = [
            (ROW.replace("[[26, 36]]", "[]"), "no relevant window"),
            (ROW.replace("[[26, 36]]", "[[36, 26]]"), "reversed or empty"),
            (
                ROW.replace("[[26, 36]]", "[[-2, 6]]"),
                "starts before the video",
            ),
            (
                ROW.replace("[[26, 36]]", "[[140, 152]]"),
                "ends after the video's 150 s",
            ),
            (
                ROW.replace(", [0, 1, 3]]", "]"),
                "5 relevant clips but 4 saliency scores",
            ),
            (ROW.replace("17]", "75]"), "clip 75 is past the end"),
            (
                ROW.replace("\"duration\": 150", "\"duration\": 0"),
                "not a length",
            ),
        ];
        for (text, why) in cases {
            let a = parse(text.as_bytes(), Format::QvHighlights).unwrap();
            assert!(a.queries.is_empty(), "{why}");
            assert_eq!(a.skipped.len(), 1);
            assert!(
                a.skipped[0].reason.contains(why),
                "{} / {why}",
                a.skipped[0].reason
            );
            assert_eq!((a.skipped[0].line, a.skipped[0].qid.as_str()), (1, "7803"));
        }
    }
}
