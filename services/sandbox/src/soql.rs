//! The SOQL subset the sandbox understands, parsed honestly:
//!
//! ```text
//! SELECT f1, f2 FROM Object
//!   [WHERE SystemModstamp (>=|>|<=|<) <datetime> [AND SystemModstamp ... ]]
//!   [ORDER BY (SystemModstamp|Id) [ASC|DESC] [, ...]]
//!   [LIMIT n]
//! ```
//! Anything else is a `MALFORMED_QUERY` (or `INVALID_FIELD` / `INVALID_TYPE`), like the real one.

use chrono::DateTime;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SfObject {
    Account,
    Contact,
    Opportunity,
    OpportunityStage,
}

impl SfObject {
    pub fn name(self) -> &'static str {
        match self {
            SfObject::Account => "Account",
            SfObject::Contact => "Contact",
            SfObject::Opportunity => "Opportunity",
            SfObject::OpportunityStage => "OpportunityStage",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            SfObject::Account,
            SfObject::Contact,
            SfObject::Opportunity,
            SfObject::OpportunityStage,
        ]
        .into_iter()
        .find(|o| o.name().eq_ignore_ascii_case(s))
    }

    pub fn fields(self) -> &'static [&'static str] {
        match self {
            SfObject::Account => &[
                "Id",
                "Name",
                "Website",
                "BillingCountry",
                "CreatedDate",
                "LastModifiedDate",
                "SystemModstamp",
                "IsDeleted",
            ],
            SfObject::Contact => &[
                "Id",
                "FirstName",
                "LastName",
                "Email",
                "Title",
                "AccountId",
                "CreatedDate",
                "LastModifiedDate",
                "SystemModstamp",
                "IsDeleted",
            ],
            SfObject::Opportunity => &[
                "Id",
                "Name",
                "AccountId",
                "Amount",
                "CurrencyIsoCode",
                "StageName",
                "CloseDate",
                "CreatedDate",
                "IsClosed",
                "IsWon",
                "LastModifiedDate",
                "SystemModstamp",
                "IsDeleted",
            ],
            SfObject::OpportunityStage => &[
                "Id",
                "ApiName",
                "MasterLabel",
                "IsClosed",
                "IsWon",
                "SortOrder",
                "DefaultProbability",
                "IsActive",
                "SystemModstamp",
            ],
        }
    }
}

/// A selected field, by canonical name.
pub type Field = &'static str;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OrderKey {
    SystemModstamp,
    Id,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Query {
    pub object: SfObject,
    pub fields: Vec<Field>,
    /// Inclusive lower and exclusive upper bound on SystemModstamp, epoch millis.
    pub lo: i64,
    pub hi: i64,
    pub order: Vec<(OrderKey, bool)>,
    pub limit: Option<usize>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SoqlError {
    Malformed(String),
    InvalidField(String),
    InvalidType(String),
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(String),
    Comma,
    Op(&'static str),
    Lit(String),
    Str(String),
}

fn tokenize(q: &str) -> Result<Vec<Tok>, SoqlError> {
    let b = q.as_bytes();
    let mut i = 0;
    let mut out = Vec::new();
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_whitespace() {
            i += 1;
        } else if c == b',' {
            out.push(Tok::Comma);
            i += 1;
        } else if c == b'>' || c == b'<' || c == b'=' || c == b'!' {
            let two = b.get(i + 1) == Some(&b'=');
            let op = match (c, two) {
                (b'>', true) => ">=",
                (b'>', false) => ">",
                (b'<', true) => "<=",
                (b'<', false) => "<",
                (b'=', _) => "=",
                (b'!', true) => "!=",
                _ => {
                    return Err(SoqlError::Malformed(format!(
                        "unexpected token: '{}'",
                        c as char
                    )));
                }
            };
            i += if two { 2 } else { 1 };
            out.push(Tok::Op(op));
        } else if c == b'\'' {
            let start = i + 1;
            let mut j = start;
            while j < b.len() && b[j] != b'\'' {
                j += if b[j] == b'\\' { 2 } else { 1 };
            }
            if j >= b.len() {
                return Err(SoqlError::Malformed("unterminated string literal".into()));
            }
            out.push(Tok::Str(q[start..j].to_string()));
            i = j + 1;
        } else if c.is_ascii_digit() {
            let start = i;
            while i < b.len()
                && (b[i].is_ascii_alphanumeric() || matches!(b[i], b':' | b'.' | b'+' | b'-'))
            {
                i += 1;
            }
            out.push(Tok::Lit(q[start..i].to_string()));
        } else if c.is_ascii_alphabetic() || c == b'_' {
            let start = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || matches!(b[i], b'_' | b'.')) {
                i += 1;
            }
            out.push(Tok::Word(q[start..i].to_string()));
        } else {
            return Err(SoqlError::Malformed(format!(
                "unexpected token: '{}'",
                c as char
            )));
        }
    }
    Ok(out)
}

fn datetime_literal(s: &str) -> Option<i64> {
    if let Ok(d) = DateTime::parse_from_rfc3339(s) {
        return Some(d.timestamp_millis());
    }
    // Salesforce also writes offsets without a colon: 2025-01-01T00:00:00.000+0000
    for fmt in ["%Y-%m-%dT%H:%M:%S%.f%z", "%Y-%m-%dT%H:%M:%S%z"] {
        if let Ok(d) = DateTime::parse_from_str(s, fmt) {
            return Some(d.timestamp_millis());
        }
    }
    None
}

struct P {
    toks: Vec<Tok>,
    i: usize,
}

impl P {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.i)
    }
    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.i).cloned();
        self.i += 1;
        t
    }
    fn keyword(&mut self, kw: &str) -> bool {
        if let Some(Tok::Word(w)) = self.peek()
            && w.eq_ignore_ascii_case(kw)
        {
            self.i += 1;
            return true;
        }
        false
    }
    fn word(&mut self, what: &str) -> Result<String, SoqlError> {
        match self.next() {
            Some(Tok::Word(w)) => Ok(w),
            Some(t) => Err(SoqlError::Malformed(format!(
                "unexpected token: {t:?}, expected {what}"
            ))),
            None => Err(SoqlError::Malformed(format!(
                "unexpected end of query, expected {what}"
            ))),
        }
    }
}

fn canonical(object: SfObject, name: &str) -> Result<Field, SoqlError> {
    object
        .fields()
        .iter()
        .find(|f| f.eq_ignore_ascii_case(name))
        .copied()
        .ok_or_else(|| {
            SoqlError::InvalidField(format!(
                "No such column '{name}' on entity '{}'. If you are attempting to use a custom field, be sure to append the '__c' after the custom field name.",
                object.name()
            ))
        })
}

pub fn parse(q: &str) -> Result<Query, SoqlError> {
    let mut p = P {
        toks: tokenize(q)?,
        i: 0,
    };
    if !p.keyword("SELECT") {
        return Err(SoqlError::Malformed("query must start with SELECT".into()));
    }
    let mut raw_fields = vec![p.word("field name")?];
    while p.peek() == Some(&Tok::Comma) {
        p.i += 1;
        raw_fields.push(p.word("field name")?);
    }
    if !p.keyword("FROM") {
        return Err(SoqlError::Malformed(
            "unexpected token, expected FROM after the field list".into(),
        ));
    }
    let obj_name = p.word("object name")?;
    let object = SfObject::parse(&obj_name).ok_or_else(|| {
        SoqlError::InvalidType(format!(
            "sObject type '{obj_name}' is not supported. If you are attempting to use a custom object, be sure to append the '__c' after the entity name."
        ))
    })?;
    let mut fields = Vec::with_capacity(raw_fields.len());
    for f in &raw_fields {
        let c = canonical(object, f)?;
        if !fields.contains(&c) {
            fields.push(c);
        } else {
            return Err(SoqlError::Malformed(format!(
                "duplicate field selected: {f}"
            )));
        }
    }
    let (mut lo, mut hi) = (i64::MIN, i64::MAX);
    if p.keyword("WHERE") {
        loop {
            let f = p.word("a field in WHERE")?;
            if !f.eq_ignore_ascii_case("SystemModstamp") {
                canonical(object, &f)?;
                return Err(SoqlError::Malformed(format!(
                    "the sandbox only filters on SystemModstamp, not {f}"
                )));
            }
            let op = match p.next() {
                Some(Tok::Op(op)) => op,
                _ => {
                    return Err(SoqlError::Malformed(
                        "expected a comparison operator".into(),
                    ));
                }
            };
            let lit = match p.next() {
                Some(Tok::Lit(l)) => l,
                Some(Tok::Str(_)) => {
                    return Err(SoqlError::Malformed(
                        "value of filter criterion for field 'SystemModstamp' must be of type dateTime and should not be enclosed in quotes".into(),
                    ));
                }
                _ => return Err(SoqlError::Malformed("expected a datetime literal".into())),
            };
            let ms = datetime_literal(&lit).ok_or_else(|| {
                SoqlError::Malformed(format!(
                    "invalid datetime literal {lit}: use e.g. 2025-01-01T00:00:00Z"
                ))
            })?;
            match op {
                ">=" => lo = lo.max(ms),
                ">" => lo = lo.max(ms.saturating_add(1)),
                "<" => hi = hi.min(ms),
                "<=" => hi = hi.min(ms.saturating_add(1)),
                "=" => {
                    lo = lo.max(ms);
                    hi = hi.min(ms.saturating_add(1));
                }
                other => {
                    return Err(SoqlError::Malformed(format!(
                        "operator {other} is not supported on SystemModstamp by the sandbox"
                    )));
                }
            }
            if !p.keyword("AND") {
                break;
            }
        }
    }
    let mut order = Vec::new();
    if p.keyword("ORDER") {
        if !p.keyword("BY") {
            return Err(SoqlError::Malformed("expected BY after ORDER".into()));
        }
        loop {
            let f = p.word("an ORDER BY field")?;
            let key = if f.eq_ignore_ascii_case("SystemModstamp") {
                OrderKey::SystemModstamp
            } else if f.eq_ignore_ascii_case("Id") {
                OrderKey::Id
            } else {
                canonical(object, &f)?;
                return Err(SoqlError::Malformed(format!(
                    "the sandbox only orders by SystemModstamp and Id, not {f}"
                )));
            };
            let desc = if p.keyword("DESC") {
                true
            } else {
                p.keyword("ASC");
                false
            };
            order.push((key, desc));
            if p.peek() == Some(&Tok::Comma) {
                p.i += 1;
            } else {
                break;
            }
        }
    }
    let mut limit = None;
    if p.keyword("LIMIT") {
        match p.next() {
            Some(Tok::Lit(n)) => match n.parse::<usize>() {
                Ok(n) => limit = Some(n),
                Err(_) => return Err(SoqlError::Malformed(format!("invalid LIMIT {n}"))),
            },
            _ => return Err(SoqlError::Malformed("expected a number after LIMIT".into())),
        }
    }
    if let Some(t) = p.peek() {
        return Err(SoqlError::Malformed(format!("unexpected token: {t:?}")));
    }
    Ok(Query {
        object,
        fields,
        lo,
        hi,
        order,
        limit,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_incremental_sync_query() {
        let q = parse(
            "SELECT Id, Name, website FROM account WHERE SystemModstamp >= 2025-01-01T00:00:00Z ORDER BY SystemModstamp ASC, Id ASC LIMIT 10",
        )
        .unwrap();
        assert_eq!(q.object, SfObject::Account);
        assert_eq!(q.fields, vec!["Id", "Name", "Website"]);
        assert_eq!(q.lo, 1_735_689_600_000);
        assert_eq!(q.hi, i64::MAX);
        assert_eq!(
            q.order,
            vec![(OrderKey::SystemModstamp, false), (OrderKey::Id, false)]
        );
        assert_eq!(q.limit, Some(10));
    }

    #[test]
    fn accepts_salesforce_offsets_and_strict_bounds() {
        let q = parse(
            "SELECT Id FROM Contact WHERE SystemModstamp > 2025-01-01T00:00:00.000+0000 AND SystemModstamp < 2025-02-01T00:00:00Z",
        )
        .unwrap();
        assert_eq!(q.lo, 1_735_689_600_001);
        assert_eq!(q.hi, 1_738_368_000_000);
    }

    #[test]
    fn refuses_what_it_does_not_understand() {
        for bad in [
            "",
            "SELECT",
            "SELECT Id Account",
            "SELECT Id FROM Account WHERE Name = 'x'",
            "SELECT Id FROM Account WHERE SystemModstamp >= '2025-01-01'",
            "SELECT Id FROM Account ORDER BY Name",
            "SELECT Id FROM Account LIMIT x",
            "SELECT Id FROM Account GROUP BY Id",
            "SELECT Id, FROM Account",
            "DELETE FROM Account",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        assert!(matches!(
            parse("SELECT Foo FROM Account"),
            Err(SoqlError::InvalidField(_))
        ));
        assert!(matches!(
            parse("SELECT Id FROM Lead"),
            Err(SoqlError::InvalidType(_))
        ));
    }
}
