//! Rest.li 2.0 query-value syntax as LinkedIn's REST API uses it in URLs:
//! `List(a,b)`, `(key:value,key:(..))`, atoms percent-encoded (`urn%3Ali%3A...`).

#[derive(Debug, Clone, PartialEq)]
pub enum RValue {
    List(Vec<RValue>),
    Obj(Vec<(String, RValue)>),
    Atom(String),
}

impl RValue {
    pub fn get(&self, key: &str) -> Option<&RValue> {
        match self {
            RValue::Obj(kv) => kv.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }
    pub fn atom(&self) -> Option<&str> {
        match self {
            RValue::Atom(s) => Some(s),
            _ => None,
        }
    }
    pub fn list(&self) -> Option<&[RValue]> {
        match self {
            RValue::List(v) => Some(v),
            _ => None,
        }
    }
}

/// Parse one raw (still percent-encoded) query value.
pub fn parse(raw: &str) -> Result<RValue, String> {
    let mut p = Parser {
        s: raw.as_bytes(),
        i: 0,
    };
    let v = p.value()?;
    if p.i != p.s.len() {
        return Err(format!("unexpected trailing input at offset {}", p.i));
    }
    Ok(v)
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }
    fn expect(&mut self, c: u8) -> Result<(), String> {
        if self.peek() == Some(c) {
            self.i += 1;
            Ok(())
        } else {
            Err(format!("expected '{}' at offset {}", c as char, self.i))
        }
    }
    fn value(&mut self) -> Result<RValue, String> {
        if self.s[self.i..].starts_with(b"List(") {
            self.i += 5;
            let mut items = Vec::new();
            if self.peek() == Some(b')') {
                self.i += 1;
                return Ok(RValue::List(items));
            }
            loop {
                items.push(self.value()?);
                match self.peek() {
                    Some(b',') => self.i += 1,
                    Some(b')') => {
                        self.i += 1;
                        return Ok(RValue::List(items));
                    }
                    _ => return Err(format!("unterminated List at offset {}", self.i)),
                }
            }
        }
        if self.peek() == Some(b'(') {
            self.i += 1;
            let mut kv = Vec::new();
            if self.peek() == Some(b')') {
                self.i += 1;
                return Ok(RValue::Obj(kv));
            }
            loop {
                let key = self.atom()?;
                self.expect(b':')?;
                let v = self.value()?;
                kv.push((key, v));
                match self.peek() {
                    Some(b',') => self.i += 1,
                    Some(b')') => {
                        self.i += 1;
                        return Ok(RValue::Obj(kv));
                    }
                    _ => return Err(format!("unterminated record at offset {}", self.i)),
                }
            }
        }
        Ok(RValue::Atom(self.atom()?))
    }
    fn atom(&mut self) -> Result<String, String> {
        let start = self.i;
        while let Some(c) = self.peek() {
            if matches!(c, b',' | b'(' | b')' | b':') {
                break;
            }
            self.i += 1;
        }
        let raw = std::str::from_utf8(&self.s[start..self.i]).map_err(|e| e.to_string())?;
        if raw.is_empty() {
            return Err(format!("empty value at offset {start}"));
        }
        crate::util::percent_decode(raw).ok_or_else(|| format!("bad percent-encoding in {raw:?}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_date_range_and_lists() {
        let v = parse("(start:(year:2025,month:1,day:1),end:(year:2025,month:1,day:31))").unwrap();
        let start = v.get("start").unwrap();
        assert_eq!(start.get("month").unwrap().atom(), Some("1"));
        let l = parse("List(urn%3Ali%3AsponsoredAccount%3A123,urn%3Ali%3AsponsoredAccount%3A4)")
            .unwrap();
        assert_eq!(
            l.list().unwrap()[0].atom(),
            Some("urn:li:sponsoredAccount:123")
        );
        assert_eq!(parse("List()").unwrap(), RValue::List(vec![]));
    }

    #[test]
    fn rejects_garbage() {
        assert!(parse("List(1,2").is_err());
        assert!(parse("(start:").is_err());
        assert!(parse("(a:1))").is_err());
        assert!(parse("").is_err());
    }
}
