//! Message content: an 8-byte sequence number, then a pattern derived from
//! it, so a receiver can tell a lost, duplicated, truncated or corrupted
//! message from a good one.

/// Sequence number of the message that tells a work-queue receiver to stop.
pub const STOP: u64 = u64::MAX;

/// Smallest message: room for the sequence number.
pub const MIN_SIZE: usize = 8;

fn pattern_byte(seq: u64, i: usize) -> u8 {
    (seq.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 56) as u8 ^ (i as u8).wrapping_mul(31)
}

/// Write the sequence number only (the timed passes).
pub fn stamp(buf: &mut [u8], seq: u64) {
    buf[..8].copy_from_slice(&seq.to_le_bytes());
}

/// Write the sequence number and the full pattern (the check pass).
pub fn fill(buf: &mut [u8], seq: u64) {
    stamp(buf, seq);
    for (i, b) in buf.iter_mut().enumerate().skip(8) {
        *b = pattern_byte(seq, i);
    }
}

/// The sequence number of a message.
pub fn seq_of(msg: &[u8]) -> Option<u64> {
    Some(u64::from_le_bytes(msg.get(..8)?.try_into().ok()?))
}

/// Check the length and read the sequence number.
pub fn check_len(msg: &[u8], size: usize) -> Result<u64, String> {
    if msg.len() != size {
        return Err(format!("message of {} bytes, expected {size}", msg.len()));
    }
    seq_of(msg).ok_or_else(|| "message shorter than its sequence number".into())
}

/// Check length, sequence number and every byte of the pattern.
pub fn check_full(msg: &[u8], size: usize) -> Result<u64, String> {
    let seq = check_len(msg, size)?;
    if seq == STOP {
        return Ok(seq);
    }
    if let Some(i) = (8..msg.len()).find(|&i| msg[i] != pattern_byte(seq, i)) {
        return Err(format!(
            "message {seq}: byte {i} is {:#04x}, expected {:#04x}",
            msg[i],
            pattern_byte(seq, i)
        ));
    }
    Ok(seq)
}

/// Check that `seen` holds every sequence number below `n` exactly once.
pub fn check_complete(seen: &mut [u64], n: u64, who: &str) -> Result<(), String> {
    seen.sort_unstable();
    if seen.len() as u64 != n {
        return Err(format!(
            "{who} received {} messages, expected {n}",
            seen.len()
        ));
    }
    if let Some((i, s)) = seen.iter().enumerate().find(|(i, s)| **s != *i as u64) {
        return Err(format!(
            "{who}: message {i} missing or duplicated (found {s} in its place)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_and_check() {
        let mut b = vec![0u8; 256];
        fill(&mut b, 42);
        assert_eq!(check_full(&b, 256), Ok(42));
        assert_eq!(check_len(&b, 256), Ok(42));
        assert!(check_full(&b, 255).is_err());
        b[200] ^= 1;
        assert!(check_full(&b, 256).unwrap_err().contains("byte 200"));
        // Same pattern, another sequence number: caught.
        fill(&mut b, 43);
        stamp(&mut b, 42);
        assert!(check_full(&b, 256).is_err());
        assert!(check_len(&b[..4], 4).is_err());
    }

    #[test]
    fn completeness() {
        let mut ok = vec![2, 0, 1];
        assert!(check_complete(&mut ok, 3, "r").is_ok());
        let mut dup = vec![0, 1, 1];
        assert!(check_complete(&mut dup, 3, "r")
            .unwrap_err()
            .contains("message 2"));
        let mut short = vec![0, 1];
        assert!(check_complete(&mut short, 3, "r").is_err());
    }
}
