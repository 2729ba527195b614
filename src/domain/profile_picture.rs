use std::fmt;

/// A group profile picture in the shape Meta accepts: a whole, square JPEG of at
/// least 192x192 pixels and at most 5 MiB. Whole means the start-of-image marker first, a
/// frame header (SOFn) that gives the size, and the end-of-image marker last: a truncated
/// upload would reach every participant as a broken picture.
///
/// Checking this locally gives the client a precise field error instead of
/// Meta's opaque upload failure, and avoids uploading bytes Meta will refuse.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ProfilePicture {
    bytes: Vec<u8>,
    width: u32,
    height: u32,
}

impl ProfilePicture {
    pub const MAX_BYTES: usize = 5 * 1024 * 1024;
    pub const MIN_SIDE: u32 = 192;

    const JPEG_MAGIC: [u8; 3] = [0xFF, 0xD8, 0xFF];
    const END_OF_IMAGE: [u8; 2] = [0xFF, 0xD9];

    pub fn parse(bytes: Vec<u8>) -> Result<Self, String> {
        // Magic first, so a PNG or a text file gets the most useful message
        // rather than a size or header complaint.
        if !bytes.starts_with(&Self::JPEG_MAGIC) {
            return Err("is not a JPEG image".to_owned());
        }
        if bytes.len() > Self::MAX_BYTES {
            return Err(format!(
                "must be at most 5 MiB ({} bytes), got {} bytes",
                Self::MAX_BYTES,
                bytes.len()
            ));
        }
        let size =
            imagesize::blob_size(&bytes).map_err(|_| "JPEG header is unreadable".to_owned())?;
        // SOF stores dimensions as u16, so a larger value means imagesize
        // misread something; treat it as unreadable rather than truncating.
        let (Ok(width), Ok(height)) = (u32::try_from(size.width), u32::try_from(size.height))
        else {
            return Err("JPEG header is unreadable".to_owned());
        };
        if !bytes.ends_with(&Self::END_OF_IMAGE) {
            return Err("is truncated: a JPEG ends with the end-of-image marker FF D9".to_owned());
        }
        if width != height {
            return Err(format!("must be square, got {width}x{height} pixels"));
        }
        if width < Self::MIN_SIDE {
            return Err(format!(
                "must be at least 192x192 pixels, got {width}x{height} pixels"
            ));
        }
        Ok(Self {
            bytes,
            width,
            height,
        })
    }

    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }

    pub fn width(&self) -> u32 {
        self.width
    }

    pub fn height(&self) -> u32 {
        self.height
    }

    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Always false for a parsed picture; provided for API symmetry with `len`.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
}

// Manual impl: the derived one would dump up to 5 MiB of bytes into logs.
impl fmt::Debug for ProfilePicture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProfilePicture")
            .field("len", &self.bytes.len())
            .field("width", &self.width)
            .field("height", &self.height)
            .finish()
    }
}

/// A minimal JPEG header with the given dimensions, used by the sandbox and
/// tests.
///
/// It contains SOI, a JFIF APP0 segment, a baseline SOF0 segment and EOI —
/// enough for header parsers to read the dimensions, but no image data.
pub fn synthetic_jpeg_header(width: u16, height: u16) -> Vec<u8> {
    let [h_hi, h_lo] = height.to_be_bytes();
    let [w_hi, w_lo] = width.to_be_bytes();
    let mut out = Vec::with_capacity(41);
    // SOI
    out.extend_from_slice(&[0xFF, 0xD8]);
    // APP0: length 16, "JFIF\0", version 1.1, no units, 1:1 density, no thumbnail.
    out.extend_from_slice(&[
        0xFF, 0xE0, 0x00, 0x10, b'J', b'F', b'I', b'F', 0x00, 0x01, 0x01, 0x00, 0x00, 0x01, 0x00,
        0x01, 0x00, 0x00,
    ]);
    // SOF0: length 17, 8-bit precision, height, width, 3 components (Y 2x2, Cb/Cr 1x1).
    out.extend_from_slice(&[0xFF, 0xC0, 0x00, 0x11, 0x08, h_hi, h_lo, w_hi, w_lo, 0x03]);
    out.extend_from_slice(&[0x01, 0x22, 0x00, 0x02, 0x11, 0x01, 0x03, 0x11, 0x01]);
    // EOI
    out.extend_from_slice(&[0xFF, 0xD9]);
    out
}

#[cfg(test)]
pub(crate) fn test_jpeg(width: u16, height: u16) -> Vec<u8> {
    synthetic_jpeg_header(width, height)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn imagesize_reads_synthetic_header() {
        for (w, h) in [(192, 192), (640, 480), (1, 65535), (300, 200)] {
            let size = imagesize::blob_size(&synthetic_jpeg_header(w, h)).expect("readable");
            assert_eq!((size.width, size.height), (usize::from(w), usize::from(h)));
        }
        assert_eq!(
            imagesize::image_type(&test_jpeg(10, 10)).expect("known type"),
            imagesize::ImageType::Jpeg
        );
    }

    #[test]
    fn accepts_minimum_square() {
        let bytes = test_jpeg(192, 192);
        let picture = ProfilePicture::parse(bytes.clone()).expect("valid");
        assert_eq!((picture.width(), picture.height()), (192, 192));
        assert_eq!(picture.len(), bytes.len());
        assert!(!picture.is_empty());
        assert_eq!(picture.bytes(), bytes.as_slice());
        assert_eq!(picture.into_bytes(), bytes);
    }

    #[test]
    fn accepts_large_square() {
        assert!(ProfilePicture::parse(test_jpeg(640, 640)).is_ok());
        assert!(ProfilePicture::parse(test_jpeg(u16::MAX, u16::MAX)).is_ok());
    }

    #[test]
    fn rejects_too_small() {
        let err = ProfilePicture::parse(test_jpeg(191, 191)).expect_err("too small");
        assert!(err.contains("at least 192x192"), "{err}");
        assert!(ProfilePicture::parse(test_jpeg(0, 0)).is_err());
    }

    #[test]
    fn rejects_non_square() {
        let err = ProfilePicture::parse(test_jpeg(200, 300)).expect_err("not square");
        assert!(err.contains("square"), "{err}");
        assert!(err.contains("200x300"), "{err}");
        assert!(ProfilePicture::parse(test_jpeg(300, 200)).is_err());
    }

    #[test]
    fn rejects_non_jpeg_magic() {
        let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\xc0\0\0\0\xc0".to_vec();
        assert_eq!(
            ProfilePicture::parse(png),
            Err("is not a JPEG image".to_owned())
        );
        for bytes in [
            vec![],
            vec![0xFF],
            vec![0xFF, 0xD8],
            vec![0xFF, 0xD8, 0xFE],
            b"GIF89a".to_vec(),
        ] {
            assert_eq!(
                ProfilePicture::parse(bytes),
                Err("is not a JPEG image".to_owned())
            );
        }
    }

    #[test]
    fn rejects_oversize_even_with_valid_header() {
        let mut bytes = test_jpeg(192, 192);
        bytes.resize(ProfilePicture::MAX_BYTES - 2, 0);
        bytes.extend_from_slice(&ProfilePicture::END_OF_IMAGE);
        assert!(ProfilePicture::parse(bytes.clone()).is_ok());
        bytes.insert(bytes.len() - 2, 0);
        let err = ProfilePicture::parse(bytes).expect_err("too big");
        assert!(err.contains("5 MiB"), "{err}");
    }

    #[test]
    fn rejects_a_jpeg_cut_short() {
        let whole = test_jpeg(192, 192);
        for cut in 1..=2 {
            let err =
                ProfilePicture::parse(whole[..whole.len() - cut].to_vec()).expect_err("truncated");
            assert!(err.starts_with("is truncated"), "{err}");
        }
        // Scan data after the header, cut before its end marker.
        let mut cut_in_scan = whole[..whole.len() - 2].to_vec();
        cut_in_scan.extend_from_slice(&[0xFF, 0xDA, 0x00, 0x08, 0x01, 0x01, 0x00, 0x00, 0x3F]);
        cut_in_scan.extend_from_slice(&[0x00, 0x12, 0x34, 0x56]);
        assert!(ProfilePicture::parse(cut_in_scan.clone()).is_err());
        cut_in_scan.extend_from_slice(&ProfilePicture::END_OF_IMAGE);
        assert!(ProfilePicture::parse(cut_in_scan).is_ok());
    }

    #[test]
    fn rejects_start_and_end_markers_without_a_frame_header() {
        let err = ProfilePicture::parse(vec![0xFF, 0xD8, 0xFF, 0xD9]).expect_err("no SOF");
        assert_eq!(err, "JPEG header is unreadable");
    }

    #[test]
    fn garbage_after_magic_is_unreadable_not_a_panic() {
        let unreadable = Err("JPEG header is unreadable".to_owned());
        let cases: [&[u8]; 8] = [
            &[0xFF, 0xD8, 0xFF],
            &[0xFF, 0xD8, 0xFF, 0xE0],
            &[0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x00, 0, 0, 0, 0, 0, 0, 0, 0],
            &[0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x01, 0, 0, 0, 0, 0, 0, 0, 0],
            &[0xFF, 0xD8, 0xFF, 0xE0, 0xFF, 0xFF, 0, 0, 0, 0, 0, 0, 0, 0],
            &[0xFF, 0xD8, 0xFF, 0xD9, 0xFF, 0xD9, 0, 0, 0, 0, 0, 0, 0, 0],
            &[0xFF, 0xD8, 0xFF, 0xC0, 0x00, 0x11, 0x08, 0x00],
            &[
                0xFF, 0xD8, 0xFF, b'h', b'e', b'l', b'l', b'o', b' ', b'w', b'o', b'r', b'l', b'd',
            ],
        ];
        for bytes in cases {
            assert_eq!(
                ProfilePicture::parse(bytes.to_vec()),
                unreadable,
                "{bytes:02X?}"
            );
        }
        // A pseudo-random tail must never panic, whatever the outcome.
        let mut state: u32 = 0x1234_5678;
        for _ in 0..200 {
            let mut bytes = vec![0xFF, 0xD8, 0xFF];
            for _ in 0..64 {
                state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                bytes.push(state.to_be_bytes()[0]);
            }
            let _ = ProfilePicture::parse(bytes);
        }
    }

    #[test]
    fn debug_omits_bytes() {
        let picture = ProfilePicture::parse(test_jpeg(192, 192)).expect("valid");
        let debug = format!("{picture:?}");
        assert!(debug.contains("width: 192"), "{debug}");
        assert!(!debug.contains("255"), "{debug}");
    }
}
