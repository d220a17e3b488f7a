//! Rendering: plain data to the bytes of the files skupperd writes. Pure and
//! deterministic: the same values give the same bytes.

pub mod records;
pub mod skrouterd;
pub mod summary;
pub mod yaml;

use time::OffsetDateTime;

/// RFC 3339 UTC with whole seconds, as Kubernetes writes condition times.
pub fn timestamp(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn timestamps_are_rfc3339_utc() {
        let t = time::macros::datetime!(2026-11-26 10:00:01.5 +01:00);
        assert_eq!(super::timestamp(t), "2026-11-26T09:00:01Z");
    }
}
