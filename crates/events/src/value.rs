//! Field types that survive the provider's type drift.
//!
//! * Phone numbers, ids and other text come as strings or as JSON numbers: [`lenient_string`].
//! * Counts come as numbers or as numeric strings (`"duration": "23"`): [`lenient_i64`].
//! * Times come as RFC 3339 (chat, contacts) or as zone-less `YYYY-MM-DD HH:MM:SS` in the provider's
//!   local time (SMS, voice): [`ProviderTime`] keeps the raw text and resolves it with a configured
//!   [`TimeZoneSetting`].

use std::fmt;
use std::str::FromStr;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{OffsetDateTime, PrimitiveDateTime, UtcOffset};

/// Accepts a string, an integer, a float or a boolean as text; `null` and a missing field are `None`.
pub fn lenient_string<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    struct TextVisitor;
    impl<'de> Visitor<'de> for TextVisitor {
        type Value = Option<String>;
        fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
            formatter.write_str("a string or a number")
        }
        fn visit_str<E: de::Error>(self, value: &str) -> Result<Self::Value, E> {
            Ok(Some(value.to_owned()))
        }
        fn visit_string<E: de::Error>(self, value: String) -> Result<Self::Value, E> {
            Ok(Some(value))
        }
        fn visit_i64<E: de::Error>(self, value: i64) -> Result<Self::Value, E> {
            Ok(Some(value.to_string()))
        }
        fn visit_u64<E: de::Error>(self, value: u64) -> Result<Self::Value, E> {
            Ok(Some(value.to_string()))
        }
        fn visit_f64<E: de::Error>(self, value: f64) -> Result<Self::Value, E> {
            Ok(Some(value.to_string()))
        }
        fn visit_bool<E: de::Error>(self, value: bool) -> Result<Self::Value, E> {
            Ok(Some(value.to_string()))
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
            deserializer.deserialize_any(TextVisitor)
        }
    }
    deserializer.deserialize_any(TextVisitor)
}

/// Like [`lenient_string`], for a field that must be present and not null.
pub fn required_string<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    match lenient_string(deserializer)? {
        Some(text) if !text.trim().is_empty() => Ok(text),
        Some(_) => Err(de::Error::custom("must not be empty")),
        None => Err(de::Error::custom("must not be null")),
    }
}

/// Accepts an integer, a float without fraction, or a string holding one; `null`, `""` and a missing
/// field are `None`.
pub fn lenient_i64<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<i64>, D::Error> {
    struct IntegerVisitor;
    impl<'de> Visitor<'de> for IntegerVisitor {
        type Value = Option<i64>;
        fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
            formatter.write_str("an integer or a string holding one")
        }
        fn visit_i64<E: de::Error>(self, value: i64) -> Result<Self::Value, E> {
            Ok(Some(value))
        }
        fn visit_u64<E: de::Error>(self, value: u64) -> Result<Self::Value, E> {
            i64::try_from(value).map(Some).map_err(|_| E::custom("integer out of range"))
        }
        fn visit_f64<E: de::Error>(self, value: f64) -> Result<Self::Value, E> {
            if value.fract() == 0.0 && value.abs() < 9.0e15 {
                #[allow(clippy::cast_possible_truncation)]
                return Ok(Some(value as i64));
            }
            Err(E::custom(format!("expected an integer, found {value}")))
        }
        fn visit_str<E: de::Error>(self, value: &str) -> Result<Self::Value, E> {
            let trimmed = value.trim();
            if trimmed.is_empty() {
                return Ok(None);
            }
            if let Ok(integer) = trimmed.parse::<i64>() {
                return Ok(Some(integer));
            }
            match trimmed.parse::<f64>() {
                Ok(float) => self.visit_f64(float),
                Err(_) => Err(E::custom(format!("expected an integer, found {value:?}"))),
            }
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
            deserializer.deserialize_any(IntegerVisitor)
        }
    }
    deserializer.deserialize_any(IntegerVisitor)
}

/// Like [`lenient_i64`], for a field that must be present.
pub fn required_i64<'de, D: Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
    lenient_i64(deserializer)?.ok_or_else(|| de::Error::custom("must not be null or empty"))
}

/// Reduces a phone number to the form used for storage and lookups: `+91 700-208 8123` and
/// `917002088123` are the same receiver. Anything that is not a phone number (an RCS agent id, an
/// e-mail address) is returned trimmed and otherwise unchanged.
pub fn normalize_phone(number: &str) -> String {
    let trimmed = number.trim();
    let is_phone_like = trimmed
        .chars()
        .all(|character| character.is_ascii_digit() || matches!(character, '+' | ' ' | '-' | '(' | ')'));
    if !is_phone_like || !trimmed.chars().any(|character| character.is_ascii_digit()) {
        return trimmed.to_owned();
    }
    trimmed.chars().filter(char::is_ascii_digit).collect()
}

/// The zone in which the provider's zone-less timestamps are read. Default `+05:30` (India).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeZoneSetting(pub UtcOffset);

impl Default for TimeZoneSetting {
    fn default() -> Self {
        // The provider is in India; an offset that cannot be built is a programming error caught by
        // the unit tests, so fall back to UTC rather than panic.
        TimeZoneSetting(UtcOffset::from_hms(5, 30, 0).unwrap_or(UtcOffset::UTC))
    }
}

impl FromStr for TimeZoneSetting {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        if matches!(text, "Z" | "UTC" | "utc" | "+00:00" | "-00:00") {
            return Ok(TimeZoneSetting(UtcOffset::UTC));
        }
        let format = format_description!("[offset_hour sign:mandatory]:[offset_minute]");
        UtcOffset::parse(text, &format)
            .map(TimeZoneSetting)
            .map_err(|_| format!("{text:?} is not a UTC offset such as \"+05:30\" or \"UTC\""))
    }
}

impl fmt::Display for TimeZoneSetting {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (hours, minutes, _) = self.0.as_hms();
        let sign = if self.0.is_negative() { '-' } else { '+' };
        write!(formatter, "{sign}{:02}:{:02}", hours.abs(), minutes.abs())
    }
}

impl Serialize for TimeZoneSetting {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for TimeZoneSetting {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(de::Error::custom)
    }
}

/// A time as the provider sent it: the raw text, and what it means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderTime {
    raw: String,
    parsed: ParsedTime,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ParsedTime {
    /// RFC 3339 or a Unix time: an instant.
    Zoned(OffsetDateTime),
    /// `YYYY-MM-DD HH:MM:SS`: a wall-clock time in the provider's zone.
    Local(PrimitiveDateTime),
    /// Text we could not read; kept so nothing is lost, treated as absent.
    Unreadable,
}

impl ProviderTime {
    pub fn parse(raw: &str) -> ProviderTime {
        ProviderTime { raw: raw.to_owned(), parsed: parse_time(raw.trim()) }
    }

    pub fn raw(&self) -> &str {
        &self.raw
    }

    /// The instant this time stands for, reading zone-less times in `zone`; `None` when unreadable.
    pub fn resolve(&self, zone: TimeZoneSetting) -> Option<OffsetDateTime> {
        match self.parsed {
            ParsedTime::Zoned(instant) => Some(instant),
            ParsedTime::Local(wall_clock) => Some(wall_clock.assume_offset(zone.0)),
            ParsedTime::Unreadable => None,
        }
    }

    /// [`ProviderTime::resolve`] as microseconds since the Unix epoch, the unit of every stored time.
    pub fn unix_micros(&self, zone: TimeZoneSetting) -> Option<i64> {
        self.resolve(zone).map(unix_micros)
    }
}

/// Microseconds since the Unix epoch; saturates far outside the years any payload carries.
pub fn unix_micros(instant: OffsetDateTime) -> i64 {
    i64::try_from(instant.unix_timestamp_nanos() / 1_000).unwrap_or(i64::MAX)
}

/// `instant` in UTC as RFC 3339 with exactly six fractional digits (`2026-11-24T21:46:53.123456Z`),
/// the form of the `Switchboard-Received-At` header. Written by hand: the gateway stamps every
/// request, and `time`'s general formatter cost more than the rest of the stamp.
pub fn rfc3339_micros(instant: OffsetDateTime) -> String {
    let utc = instant.to_offset(UtcOffset::UTC);
    // Years outside 0..=9999 cannot be written in RFC 3339; the clock never gives them.
    let year = u32::try_from(utc.year().clamp(0, 9999)).unwrap_or_default();
    let fields: [(u32, u32, char); 7] = [
        (year, 4, '-'),
        (u8::from(utc.month()).into(), 2, '-'),
        (utc.day().into(), 2, 'T'),
        (utc.hour().into(), 2, ':'),
        (utc.minute().into(), 2, ':'),
        (utc.second().into(), 2, '.'),
        (utc.microsecond(), 6, 'Z'),
    ];
    let mut text = String::with_capacity(27);
    for (value, digits, separator) in fields {
        for place in (0..digits).rev() {
            let digit = value / 10u32.pow(place) % 10;
            text.push(char::from_digit(digit, 10).unwrap_or('0'));
        }
        text.push(separator);
    }
    text
}

fn parse_time(text: &str) -> ParsedTime {
    if let Ok(instant) = OffsetDateTime::parse(text, &Rfc3339) {
        return ParsedTime::Zoned(instant);
    }
    let space = format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    let space_fraction = format_description!("[year]-[month]-[day] [hour]:[minute]:[second].[subsecond]");
    let tee = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
    let tee_fraction = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond]");
    for format in [space, space_fraction, tee, tee_fraction] {
        if let Ok(wall_clock) = PrimitiveDateTime::parse(text, format) {
            return ParsedTime::Local(wall_clock);
        }
    }
    if let Ok(seconds) = text.parse::<i64>()
        && let Ok(instant) = OffsetDateTime::from_unix_timestamp(seconds)
    {
        return ParsedTime::Zoned(instant);
    }
    ParsedTime::Unreadable
}

impl Serialize for ProviderTime {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.raw)
    }
}

impl<'de> Deserialize<'de> for ProviderTime {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Unix times arrive as numbers; everything else as text. An empty string is kept as an
        // unreadable (absent) time rather than refused.
        let text = lenient_string(deserializer)?.unwrap_or_default();
        Ok(ProviderTime::parse(&text))
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;
    use time::macros::datetime;

    use super::*;

    #[test]
    fn received_times_are_rfc3339_with_microseconds() {
        let instant = time::macros::datetime!(2026-01-02 03:04:05.123456789 +05:30);
        assert_eq!(rfc3339_micros(instant), "2026-01-01T21:34:05.123456Z");
        let whole = time::macros::datetime!(1999-12-31 23:59:59 UTC);
        assert_eq!(rfc3339_micros(whole), "1999-12-31T23:59:59.000000Z");
    }

    proptest::proptest! {
        #[test]
        fn received_times_read_back_to_the_microsecond(micros in 0i64..253_402_300_799_999_999) {
            let instant = OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1_000).expect("in range");
            let text = rfc3339_micros(instant);
            proptest::prop_assert_eq!(text.len(), 27);
            let parsed = OffsetDateTime::parse(&text, &Rfc3339).expect("RFC 3339");
            proptest::prop_assert_eq!(unix_micros(parsed), micros);
        }
    }

    #[derive(Deserialize)]
    struct Sample {
        #[serde(default, deserialize_with = "lenient_string")]
        text: Option<String>,
        #[serde(default, deserialize_with = "lenient_i64")]
        count: Option<i64>,
        #[serde(default)]
        at: Option<ProviderTime>,
    }

    fn sample(json: &str) -> Result<Sample, serde_json::Error> {
        serde_json::from_str(json)
    }

    #[test]
    fn text_accepts_strings_and_numbers() {
        assert_eq!(
            sample(r#"{"text": "917002088123"}"#).ok().and_then(|s| s.text),
            Some("917002088123".into())
        );
        assert_eq!(
            sample(r#"{"text": 917002088123}"#).ok().and_then(|s| s.text),
            Some("917002088123".into())
        );
        assert_eq!(sample(r#"{"text": null}"#).ok().and_then(|s| s.text), None);
        assert_eq!(sample(r#"{}"#).ok().and_then(|s| s.text), None);
        assert!(sample(r#"{"text": {"a": 1}}"#).is_err());
    }

    #[test]
    fn integers_accept_numeric_strings() {
        assert_eq!(sample(r#"{"count": "23"}"#).ok().and_then(|s| s.count), Some(23));
        assert_eq!(sample(r#"{"count": 23}"#).ok().and_then(|s| s.count), Some(23));
        assert_eq!(sample(r#"{"count": 2.0}"#).ok().and_then(|s| s.count), Some(2));
        assert_eq!(sample(r#"{"count": ""}"#).ok().and_then(|s| s.count), None);
        assert!(sample(r#"{"count": "twenty"}"#).is_err());
        assert!(sample(r#"{"count": 2.5}"#).is_err());
    }

    #[test]
    fn zone_less_times_use_the_configured_zone() {
        let time = ProviderTime::parse("2021-04-09 16:27:51");
        assert_eq!(time.resolve(TimeZoneSetting::default()), Some(datetime!(2021-04-09 10:57:51 UTC)));
        assert_eq!(time.resolve(TimeZoneSetting(UtcOffset::UTC)), Some(datetime!(2021-04-09 16:27:51 UTC)));
        let zoned = ProviderTime::parse("2021-06-18T14:48:06.886358Z");
        assert_eq!(
            zoned.resolve(TimeZoneSetting::default()),
            Some(datetime!(2021-06-18 14:48:06.886358 UTC))
        );
        assert_eq!(zoned.unix_micros(TimeZoneSetting::default()), Some(1_624_027_686_886_358));
        let unreadable = ProviderTime::parse("yesterday");
        assert_eq!(unreadable.resolve(TimeZoneSetting::default()), None);
        assert_eq!(unreadable.raw(), "yesterday");
        assert_eq!(
            sample(r#"{"at": 1618000000}"#)
                .ok()
                .and_then(|s| s.at)
                .and_then(|t| t.resolve(TimeZoneSetting::default())),
            Some(datetime!(2021-04-09 20:26:40 UTC))
        );
    }

    #[test]
    fn zone_settings_parse_and_print() {
        assert_eq!("+05:30".parse::<TimeZoneSetting>().map(|z| z.to_string()), Ok("+05:30".into()));
        assert_eq!("-03:00".parse::<TimeZoneSetting>().map(|z| z.to_string()), Ok("-03:00".into()));
        assert_eq!("UTC".parse::<TimeZoneSetting>().map(|z| z.to_string()), Ok("+00:00".into()));
        assert!("India".parse::<TimeZoneSetting>().is_err());
        assert_eq!(TimeZoneSetting::default().to_string(), "+05:30");
    }

    #[test]
    fn phone_numbers_normalise() {
        assert_eq!(normalize_phone("+91 700-208 8123"), "917002088123");
        assert_eq!(normalize_phone("917002088123"), "917002088123");
        assert_eq!(normalize_phone("700969ca-0cb2-11ec-a2c1234"), "700969ca-0cb2-11ec-a2c1234");
        assert_eq!(normalize_phone(" demo@gmail.com "), "demo@gmail.com");
    }
}
