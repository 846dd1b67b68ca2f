//! A UTC instant with microsecond precision, the one time type every table uses.
//!
//! PostgreSQL stores it as `timestamptz`; SQLite stores it as integer microseconds since the
//! Unix epoch (RFC 3339 text would not sort correctly when fractional seconds vary in length).
//! The two codecs live in `store::codec`.

use serde::{Deserialize, Serialize};
use std::fmt;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// A UTC instant truncated to whole microseconds (the precision both stores keep).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(OffsetDateTime);

impl Timestamp {
    /// The current time, truncated to microseconds.
    pub fn now() -> Self {
        Self::from_datetime(OffsetDateTime::now_utc())
    }

    /// Normalises any instant to UTC and microsecond precision.
    pub fn from_datetime(dt: OffsetDateTime) -> Self {
        let utc = dt.to_offset(time::UtcOffset::UTC);
        let micros = utc.microsecond();
        // replace_microsecond only fails for values >= 1_000_000, which microsecond() never returns.
        Self(utc.replace_microsecond(micros).unwrap_or(utc))
    }

    /// Microseconds since the Unix epoch.
    pub fn unix_micros(&self) -> i64 {
        (self.0.unix_timestamp_nanos() / 1_000) as i64
    }

    /// The inverse of [`Timestamp::unix_micros`]; `None` if out of the representable range.
    pub fn from_unix_micros(micros: i64) -> Option<Self> {
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1_000)
            .ok()
            .map(Self)
    }

    /// The underlying date-time in UTC.
    pub fn as_datetime(&self) -> OffsetDateTime {
        self.0
    }

    /// RFC 3339 text, e.g. `2026-11-28T10:48:24.123456Z`.
    pub fn to_rfc3339(&self) -> String {
        self.0
            .format(&Rfc3339)
            .unwrap_or_else(|_| self.0.unix_timestamp().to_string())
    }

    /// Parses RFC 3339 text.
    pub fn parse_rfc3339(s: &str) -> Result<Self, time::error::Parse> {
        OffsetDateTime::parse(s, &Rfc3339).map(Self::from_datetime)
    }

    /// 9999-12-31T00:00:00Z: where failed operations are parked in the queue's time order, so
    /// they never sit at the head of the claim index (docs/operations.md).
    pub fn parked() -> Self {
        Self::from_unix_micros(253_402_214_400_000_000).unwrap_or_else(Self::now)
    }

    /// This instant moved by a std duration (saturating).
    pub fn after(&self, d: std::time::Duration) -> Self {
        self.add(time::Duration::try_from(d).unwrap_or(time::Duration::MAX))
    }

    /// This instant moved back by a std duration (saturating).
    pub fn before(&self, d: std::time::Duration) -> Self {
        self.add(-time::Duration::try_from(d).unwrap_or(time::Duration::MAX))
    }

    /// How long from `earlier` to this instant (zero if `earlier` is later).
    pub fn since(&self, earlier: Timestamp) -> std::time::Duration {
        std::time::Duration::try_from(self.0 - earlier.0).unwrap_or_default()
    }

    /// This instant moved by a duration (saturating at the representable range).
    pub fn add(&self, d: time::Duration) -> Self {
        Self::from_datetime(self.0.saturating_add(d))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

impl Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_rfc3339())
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse_rfc3339(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn micros_round_trip() {
        let t = Timestamp::now();
        assert_eq!(Timestamp::from_unix_micros(t.unix_micros()), Some(t));
    }

    #[test]
    fn moves_back_and_forth_saturating() {
        let t = Timestamp::now();
        let d = std::time::Duration::from_secs(90);
        assert_eq!(t.before(d).after(d), t);
        assert_eq!(t.since(t.before(d)), d);
        // Absurd spans saturate instead of wrapping into the future.
        assert!(t.before(std::time::Duration::MAX) < t);
    }

    #[test]
    fn rfc3339_round_trip() {
        let t = Timestamp::now();
        assert_eq!(Timestamp::parse_rfc3339(&t.to_rfc3339()).ok(), Some(t));
    }
}
