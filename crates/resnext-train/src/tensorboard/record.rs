//! TFRecord framing, as TensorFlow's `RecordWriter` writes it: each record is its length (u64
//! little-endian), the masked CRC32C of those 8 bytes, the data, and the masked CRC32C of the data.

/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), table-driven.
pub fn crc32c(bytes: &[u8]) -> u32 {
    static TABLE: std::sync::OnceLock<[u32; 256]> = std::sync::OnceLock::new();
    let table = TABLE.get_or_init(|| {
        std::array::from_fn(|i| {
            let mut c = i as u32;
            for _ in 0..8 {
                c = if c & 1 == 1 {
                    (c >> 1) ^ 0x82F6_3B78
                } else {
                    c >> 1
                };
            }
            c
        })
    });
    !bytes.iter().fold(!0u32, |c, &b| {
        table[((c ^ b as u32) & 0xff) as usize] ^ (c >> 8)
    })
}

/// TFRecord's masked CRC: rotated right by 15 bits plus a constant, so that a CRC stored in the
/// data does not checksum to a trivial value.
pub fn masked_crc32c(bytes: &[u8]) -> u32 {
    crc32c(bytes).rotate_right(15).wrapping_add(0xa282_ead8)
}

/// One framed record around `data`.
pub fn frame(data: &[u8]) -> Vec<u8> {
    let len = (data.len() as u64).to_le_bytes();
    let mut out = Vec::with_capacity(data.len() + 16);
    out.extend_from_slice(&len);
    out.extend_from_slice(&masked_crc32c(&len).to_le_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(&masked_crc32c(data).to_le_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_matches_the_standard_check_values() {
        // RFC 3720, B.4, and the usual "123456789" check value
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
        assert_eq!(crc32c(&[0u8; 32]), 0x8A91_36AA);
        assert_eq!(crc32c(&[0xffu8; 32]), 0x62A8_AB43);
        let ascending: Vec<u8> = (0..32).collect();
        assert_eq!(crc32c(&ascending), 0x46DD_794E);
        assert_eq!(crc32c(b""), 0);
    }

    #[test]
    fn a_frame_holds_its_length_data_and_checksums() {
        let f = frame(b"abc");
        assert_eq!(f.len(), 3 + 16);
        assert_eq!(u64::from_le_bytes(f[..8].try_into().unwrap()), 3);
        assert_eq!(
            u32::from_le_bytes(f[8..12].try_into().unwrap()),
            masked_crc32c(&3u64.to_le_bytes())
        );
        assert_eq!(&f[12..15], b"abc");
        assert_eq!(
            u32::from_le_bytes(f[15..].try_into().unwrap()),
            masked_crc32c(b"abc")
        );
    }
}
