//! The placeholder functions: `${uuid()}`, `${now()}`, `${randint(a,b)}`.
//!
//! Function names are case-insensitive; arguments are checked when the template is parsed.
//!
//! | function | gives |
//! |---|---|
//! | `uuid()` | a random UUID v4, canonical lower-case form: `0b6f9d3e-5c1a-4e8b-9f3d-2a7c1e4b5d6f` |
//! | `now()` | the local time, ISO-8601 at second precision **with** the UTC offset: `2026-04-28T10:00:00+02:00` |
//! | `randint(a,b)` | a uniform integer in `[a, b]`, both ends included (64-bit signed); as a lone JSON value it stays a number |
//!
//! `now()` differs from the Python version on purpose: Python wrote the local time with no
//! offset (`2026-04-28T10:00:00`), which is ambiguous across time zones and DST changes; the
//! offset makes the value an unambiguous instant and is still accepted by ISO-8601 parsers.
//! (UTC is written `+00:00`.)
//!
//! Randomness comes from [`rand::rng`], a cryptographically strong generator local to the
//! thread.

use std::fmt::Write as _;

use rand::{Rng, RngCore};

/// A random UUID v4 in canonical lower-case form.
pub fn uuid_v4() -> String {
    let mut out = String::with_capacity(36);
    write_uuid_v4(&mut out);
    out
}

/// Appends a random UUID v4 (lower case) to `out`.
pub(crate) fn write_uuid_v4(out: &mut String) {
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    bytes[6] = (bytes[6] & 0x0f) | 0x40; // version 4
    bytes[8] = (bytes[8] & 0x3f) | 0x80; // RFC 4122 variant
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for (i, byte) in bytes.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            out.push('-');
        }
        out.push(char::from(HEX[usize::from(byte >> 4)]));
        out.push(char::from(HEX[usize::from(byte & 0x0f)]));
    }
}

/// The local time as ISO-8601 at second precision with the UTC offset
/// (`2026-04-28T10:00:00+02:00`).
pub fn now_iso8601() -> String {
    let mut out = String::with_capacity(25);
    write_now(&mut out);
    out
}

/// Appends [`now_iso8601`] to `out`.
pub(crate) fn write_now(out: &mut String) {
    let now = chrono::Local::now();
    // Writing to a String cannot fail.
    let _ = write!(out, "{}", now.format("%Y-%m-%dT%H:%M:%S%:z"));
}

/// A uniform integer in `[low, high]` (both included). `high < low` gives `low`.
pub fn randint(low: i64, high: i64) -> i64 {
    if high <= low {
        return low;
    }
    rand::rng().random_range(low..=high)
}

/// A function call parsed from a placeholder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Call {
    Uuid,
    Now,
    RandInt { low: i64, high: i64 },
}

/// Parses `name(args)`: `None` when the token is not a call at all, `Some(Err(reason))` when
/// it is a call that cannot work.
pub(crate) fn parse_call(token: &str) -> Option<Result<Call, String>> {
    let inner = token.strip_suffix(')')?;
    let (name, args) = inner.split_once('(')?;
    let name = name.trim_end();
    let mut chars = name.chars();
    let first = chars.next()?;
    if !(first.is_ascii_alphabetic() || first == '_')
        || !chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        return None;
    }
    let args: Vec<&str> = if args.trim().is_empty() {
        Vec::new()
    } else {
        args.split(',').map(str::trim).collect()
    };
    let lower = name.to_ascii_lowercase();
    Some(match lower.as_str() {
        "uuid" | "now" if !args.is_empty() => Err(format!("{lower}() takes no arguments")),
        "uuid" => Ok(Call::Uuid),
        "now" => Ok(Call::Now),
        "randint" => parse_randint(&args),
        _ => Err(format!(
            "unknown function {name:?} (known: now(), randint(a,b), uuid())"
        )),
    })
}

fn parse_randint(args: &[&str]) -> Result<Call, String> {
    let [low, high] = args else {
        return Err(format!(
            "randint(a,b) takes exactly 2 arguments, got {}",
            args.len()
        ));
    };
    let parse = |text: &str| {
        text.parse::<i64>()
            .map_err(|_| format!("randint(a,b): {text:?} is not a 64-bit integer"))
    };
    let (low, high) = (parse(low)?, parse(high)?);
    if high < low {
        return Err(format!("randint({low},{high}): b must not be less than a"));
    }
    Ok(Call::RandInt { low, high })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_is_v4_lower_case() {
        let id = uuid_v4();
        assert_eq!(id.len(), 36);
        let parts: Vec<_> = id.split('-').map(str::len).collect();
        assert_eq!(parts, [8, 4, 4, 4, 12]);
        assert_eq!(&id[14..15], "4");
        assert!(matches!(&id[19..20], "8" | "9" | "a" | "b"), "{id}");
        assert!(id
            .chars()
            .all(|c| c == '-' || c.is_ascii_digit() || ('a'..='f').contains(&c)));
        assert_ne!(uuid_v4(), id);
    }

    #[test]
    fn now_has_an_offset() {
        let now = now_iso8601();
        let parsed = chrono::DateTime::parse_from_rfc3339(&now).expect("RFC 3339");
        let age = chrono::Utc::now().signed_duration_since(parsed);
        assert!(age.num_seconds().abs() <= 2, "{now}");
        assert_eq!(now.len(), 25, "{now}");
    }

    #[test]
    fn calls_parse_and_bad_ones_say_why() {
        assert_eq!(parse_call("UUID()"), Some(Ok(Call::Uuid)));
        assert_eq!(parse_call("Now( )"), Some(Ok(Call::Now)));
        assert_eq!(
            parse_call("randint( -3 , 7 )"),
            Some(Ok(Call::RandInt { low: -3, high: 7 }))
        );
        assert_eq!(parse_call("var.x"), None);
        assert_eq!(parse_call("a.b(c)"), None);
        for (token, reason) in [
            ("randint(1)", "exactly 2 arguments, got 1"),
            ("randint(1,2,3)", "exactly 2 arguments, got 3"),
            ("randint()", "exactly 2 arguments, got 0"),
            ("randint(1,x)", "\"x\" is not a 64-bit integer"),
            ("randint(1.5,2)", "\"1.5\" is not"),
            ("randint(5,1)", "b must not be less than a"),
            ("uuid(4)", "takes no arguments"),
            ("shout()", "unknown function \"shout\""),
        ] {
            let error = parse_call(token)
                .expect("a call")
                .expect_err("should not parse");
            assert!(error.contains(reason), "{token}: {error}");
        }
    }

    #[test]
    fn randint_stays_in_range_and_hits_both_ends() {
        let mut seen = [false; 3];
        for _ in 0..1000 {
            let n = randint(1, 3);
            assert!((1..=3).contains(&n));
            seen[usize::try_from(n - 1).expect("small")] = true;
        }
        assert_eq!(seen, [true; 3]);
        assert_eq!(randint(i64::MIN, i64::MIN), i64::MIN);
        let _ = randint(i64::MIN, i64::MAX);
    }
}
