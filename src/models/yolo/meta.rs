//! Ultralytics' ONNX metadata: `names` is a Python-literal dict
//! (`{0: 'person', 1: "o'clock", …}`), `imgsz` a list (`[640, 640]`),
//! `task` a word. A tiny parser for exactly those literals beats shelling out
//! to Python or guessing with string splits.

use std::collections::HashMap;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct UltralyticsMeta {
    /// Class names by index, when the model carries them.
    pub names: Option<Vec<String>>,
    /// `[height, width]` the model was exported for.
    pub imgsz: Option<[u32; 2]>,
    pub task: Option<String>,
}

impl UltralyticsMeta {
    pub fn from_metadata(metadata: &HashMap<String, String>) -> Result<Self, String> {
        let names = metadata
            .get("names")
            .map(|text| {
                parse_names(text).map_err(|e| {
                    format!("model metadata `names` is not a Python dict of class names: {e}")
                })
            })
            .transpose()?;
        let imgsz = metadata.get("imgsz").and_then(|text| parse_imgsz(text));
        Ok(Self {
            names,
            imgsz,
            task: metadata.get("task").map(|t| t.trim().to_owned()),
        })
    }
}

/// `{0: 'person', 1: 'bicycle'}` → `["person", "bicycle"]`; indices must be 0..n.
pub fn parse_names(text: &str) -> Result<Vec<String>, String> {
    let mut p = Parser {
        s: text.as_bytes(),
        i: 0,
    };
    p.expect(b'{')?;
    let mut pairs: Vec<(usize, String)> = Vec::new();
    loop {
        p.skip_ws();
        if p.eat(b'}') {
            break;
        }
        let index = p.integer()?;
        p.skip_ws();
        p.expect(b':')?;
        p.skip_ws();
        let name = p.string()?;
        pairs.push((index, name));
        p.skip_ws();
        if p.eat(b',') {
            continue;
        }
        p.skip_ws();
        p.expect(b'}')?;
        break;
    }
    pairs.sort_by_key(|(i, _)| *i);
    for (expected, (index, _)) in pairs.iter().enumerate() {
        if *index != expected {
            return Err(format!(
                "class indices are not 0..{}: missing {expected}",
                pairs.len()
            ));
        }
    }
    Ok(pairs.into_iter().map(|(_, n)| n).collect())
}

/// `[640, 640]` or `640` → `[h, w]`.
fn parse_imgsz(text: &str) -> Option<[u32; 2]> {
    let numbers: Vec<u32> = text
        .trim_matches(|c: char| c == '[' || c == ']' || c == '(' || c == ')' || c.is_whitespace())
        .split(',')
        .map(|s| s.trim().parse().ok())
        .collect::<Option<_>>()?;
    match numbers.as_slice() {
        [s] => Some([*s, *s]),
        [h, w] => Some([*h, *w]),
        _ => None,
    }
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn skip_ws(&mut self) {
        while self.s.get(self.i).is_some_and(|b| b.is_ascii_whitespace()) {
            self.i += 1;
        }
    }
    fn eat(&mut self, b: u8) -> bool {
        let hit = self.s.get(self.i) == Some(&b);
        self.i += usize::from(hit);
        hit
    }
    fn expect(&mut self, b: u8) -> Result<(), String> {
        self.skip_ws();
        if self.eat(b) {
            Ok(())
        } else {
            Err(format!("expected `{}` at byte {}", b as char, self.i))
        }
    }
    fn integer(&mut self) -> Result<usize, String> {
        let start = self.i;
        while self.s.get(self.i).is_some_and(u8::is_ascii_digit) {
            self.i += 1;
        }
        std::str::from_utf8(&self.s[start..self.i])
            .ok()
            .and_then(|d| d.parse().ok())
            .ok_or_else(|| format!("expected a class index at byte {start}"))
    }
    fn string(&mut self) -> Result<String, String> {
        let quote = match self.s.get(self.i) {
            Some(q @ (b'\'' | b'"')) => *q,
            _ => return Err(format!("expected a quoted name at byte {}", self.i)),
        };
        self.i += 1;
        let mut out = Vec::new();
        loop {
            match self.s.get(self.i) {
                None => return Err("unterminated string".into()),
                Some(b'\\') => {
                    let escaped = self.s.get(self.i + 1).ok_or("unterminated escape")?;
                    out.push(match escaped {
                        b'n' => b'\n',
                        b't' => b'\t',
                        other => *other,
                    });
                    self.i += 2;
                }
                Some(b) if *b == quote => {
                    self.i += 1;
                    break;
                }
                Some(b) => {
                    out.push(*b);
                    self.i += 1;
                }
            }
        }
        String::from_utf8(out).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_python_dict_literals() {
        let names =
            parse_names("{0: 'person', 1: \"o'clock\", 2: 'a\\'b', 3: 'dining table'}").unwrap();
        assert_eq!(names, vec!["person", "o'clock", "a'b", "dining table"]);
        assert_eq!(parse_names("{}").unwrap(), Vec::<String>::new());
        assert!(parse_names("{1: 'x'}").unwrap_err().contains("missing 0"));
        assert!(parse_names("[0, 1]").is_err());
    }

    #[test]
    fn parses_imgsz() {
        assert_eq!(parse_imgsz("[640, 480]"), Some([640, 480]));
        assert_eq!(parse_imgsz("320"), Some([320, 320]));
        assert_eq!(parse_imgsz("[1, 2, 3]"), None);
    }
}
