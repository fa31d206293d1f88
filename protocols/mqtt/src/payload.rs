//! The `payload` key: text, `hex:` or `b64:`.

use base64::Engine as _;
use bytes::Bytes;

/// Decodes a rendered payload: `hex:0a0b` and `b64:AAE=` give those bytes, anything else is
/// sent as its UTF-8 text.
pub(crate) fn decode(text: &str) -> Result<Bytes, String> {
    if let Some(hex) = text.strip_prefix("hex:") {
        return decode_hex(hex).map(Bytes::from);
    }
    if let Some(b64) = text.strip_prefix("b64:") {
        let cleaned: String = b64.chars().filter(|c| !c.is_ascii_whitespace()).collect();
        return base64::engine::general_purpose::STANDARD
            .decode(cleaned.as_bytes())
            .or_else(|_| {
                base64::engine::general_purpose::STANDARD_NO_PAD.decode(cleaned.as_bytes())
            })
            .map(Bytes::from)
            .map_err(|e| format!("invalid base64 payload: {e}"));
    }
    Ok(Bytes::copy_from_slice(text.as_bytes()))
}

fn decode_hex(text: &str) -> Result<Vec<u8>, String> {
    let digits: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    if !digits.len().is_multiple_of(2) {
        return Err(format!(
            "invalid hex payload: {} digits (expected an even number)",
            digits.len()
        ));
    }
    digits
        .chunks_exact(2)
        .map(|pair| match (nibble(pair[0]), nibble(pair[1])) {
            (Some(high), Some(low)) => Ok(high << 4 | low),
            _ => Err(format!(
                "invalid hex payload: {:?} is not a hex byte",
                String::from_utf8_lossy(pair)
            )),
        })
        .collect()
}

fn nibble(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::decode;

    #[test]
    fn text_hex_and_base64() {
        assert_eq!(&decode("héllo").expect("text")[..], "héllo".as_bytes());
        assert_eq!(&decode("hex:00ff 10").expect("hex")[..], &[0, 255, 16]);
        assert_eq!(&decode("b64:AAEC").expect("b64")[..], &[0, 1, 2]);
        assert_eq!(&decode("b64:AAE").expect("unpadded")[..], &[0, 1]);
        assert!(decode("hex:abc").expect_err("odd").contains("even"));
        assert!(decode("hex:zz").expect_err("bad digit").contains("\"zz\""));
        assert!(decode("b64:*").expect_err("bad b64").contains("base64"));
    }
}
