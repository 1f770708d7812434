//! Base64 of the image file as CVAT sends it (standard alphabet, padded, no
//! line breaks). `curl … $(base64 -w0 f)` produces the same; data URLs and
//! missing padding are tolerated because hand-written clients send them.

use base64::{
    alphabet,
    engine::{general_purpose::GeneralPurpose, DecodePaddingMode, GeneralPurposeConfig},
    Engine,
};

use crate::{Error, Result};

const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Decodes the `image` field. The output is allocated once at its exact size
/// (base64 is at most 3/4 of the text, which the body limit already bounds).
pub fn decode_base64(text: &str) -> Result<Vec<u8>> {
    let text = text.trim();
    // Accept `data:image/png;base64,....` as browsers produce it.
    let text = match text.strip_prefix("data:") {
        Some(rest) => rest.split_once(',').map(|(_, data)| data).unwrap_or(rest),
        None => text,
    };
    if text.is_empty() {
        return Err(Error::EmptyImage);
    }
    LENIENT
        .decode(text)
        .map_err(|e| Error::InvalidBase64(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_padded_unpadded_and_data_urls() {
        assert_eq!(decode_base64("aGVsbG8=").unwrap(), b"hello");
        assert_eq!(decode_base64("aGVsbG8").unwrap(), b"hello");
        assert_eq!(
            decode_base64("data:image/png;base64,aGVsbG8=").unwrap(),
            b"hello"
        );
    }

    #[test]
    fn rejects_garbage_and_empty() {
        assert!(matches!(
            decode_base64("@@@@"),
            Err(Error::InvalidBase64(_))
        ));
        assert!(matches!(decode_base64(""), Err(Error::EmptyImage)));
    }
}
