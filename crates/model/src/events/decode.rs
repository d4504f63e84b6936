//! JSON → event rows, borrowing strings from the input, with precise reasons for rejects.
//!
//! A hand-written serde visitor: unknown fields are skipped without allocation, a repeated key
//! (Jackson writes `event_type` twice) keeps the last value, and a wrong type names the field.

use std::borrow::Cow;
use std::fmt;

use serde::Deserializer;
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, Visitor};

/// A decoded event; strings borrow from the line unless they contained escapes.
#[derive(Debug, Default, PartialEq)]
pub struct EventRow<'a> {
    /// `event_id`.
    pub event_id: Cow<'a, str>,
    /// `timestamp`, epoch milliseconds.
    pub timestamp_ms: i64,
    /// `event_type`.
    pub event_type: Cow<'a, str>,
    /// `user`.
    pub user: Option<Cow<'a, str>>,
    /// `source_ip`.
    pub source_ip: Option<Cow<'a, str>>,
    /// `status`.
    pub status: Option<Cow<'a, str>>,
    /// `threat_score`.
    pub threat_score: Option<f64>,
    /// Top-level `location`.
    pub location: Option<Cow<'a, str>>,
    /// `metadata.geo_location`.
    pub geo_location: Option<Cow<'a, str>>,
    /// `destination_ip`.
    pub destination_ip: Option<Cow<'a, str>>,
}

#[derive(Default)]
struct Partial<'a> {
    event_id: Option<Cow<'a, str>>,
    timestamp_ms: Option<i64>,
    event_type: Option<Cow<'a, str>>,
    user: Option<Cow<'a, str>>,
    source_ip: Option<Cow<'a, str>>,
    status: Option<Cow<'a, str>>,
    threat_score: Option<f64>,
    location: Option<Cow<'a, str>>,
    geo_location: Option<Cow<'a, str>>,
    destination_ip: Option<Cow<'a, str>>,
}

/// Decodes one JSON line into an event, or says why it is not a valid event.
pub fn decode_event(line: &[u8]) -> Result<EventRow<'_>, String> {
    decode_from(serde_json::Deserializer::from_slice(line))
}

/// [`decode_event`] over a line known to be UTF-8 (its strings are not checked again).
pub fn decode_event_str(line: &str) -> Result<EventRow<'_>, String> {
    decode_from(serde_json::Deserializer::from_str(line))
}

fn decode_from<'de, R: serde_json::de::Read<'de>>(mut de: serde_json::Deserializer<R>) -> Result<EventRow<'de>, String> {
    let partial = de.deserialize_map(EventVisitor).map_err(|e| describe_json_error(&e))?;
    de.end().map_err(|e| format!("trailing data after the event: {e}"))?;
    let event_id = partial.event_id.ok_or("missing required field `event_id`")?;
    let timestamp_ms = partial.timestamp_ms.ok_or("missing required field `timestamp`")?;
    let event_type = partial.event_type.ok_or("missing required field `event_type`")?;
    if timestamp_ms < 0 {
        return Err(format!("`timestamp` {timestamp_ms} is negative (epoch milliseconds expected)"));
    }
    Ok(EventRow {
        event_id,
        timestamp_ms,
        event_type,
        user: partial.user,
        source_ip: partial.source_ip,
        status: partial.status,
        threat_score: partial.threat_score,
        location: partial.location,
        geo_location: partial.geo_location,
        destination_ip: partial.destination_ip,
    })
}

fn describe_json_error(e: &serde_json::Error) -> String {
    use serde_json::error::Category;
    match e.classify() {
        Category::Syntax | Category::Eof => format!("not valid JSON: {e}"),
        Category::Data => format!("not a valid event: {e}"),
        Category::Io => format!("read error: {e}"),
    }
}

enum Field {
    EventId,
    Timestamp,
    EventType,
    User,
    SourceIp,
    Status,
    ThreatScore,
    Location,
    DestinationIp,
    Metadata,
    Other,
}

impl Field {
    fn named(name: &str) -> Field {
        match name {
            "event_id" => Field::EventId,
            "timestamp" => Field::Timestamp,
            "event_type" => Field::EventType,
            "user" => Field::User,
            "source_ip" => Field::SourceIp,
            "status" => Field::Status,
            "threat_score" => Field::ThreatScore,
            "location" => Field::Location,
            "destination_ip" => Field::DestinationIp,
            "metadata" => Field::Metadata,
            _ => Field::Other,
        }
    }
}

/// An object key, classified by the function it holds as the key lies in the input (nothing
/// allocated for it, escaped or not).
struct Key<T>(fn(&str) -> T);

impl<'de, T> DeserializeSeed<'de> for Key<T> {
    type Value = T;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<T, D::Error> {
        d.deserialize_identifier(self)
    }
}

impl<T> Visitor<'_> for Key<T> {
    type Value = T;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a field name")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
        Ok((self.0)(v))
    }
}

struct EventVisitor;

impl<'de> Visitor<'de> for EventVisitor {
    type Value = Partial<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object (one security event)")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Partial<'de>, A::Error> {
        let mut ev = Partial::default();
        while let Some(field) = map.next_key_seed(Key(Field::named))? {
            match field {
                Field::EventId => ev.event_id = map.next_value_seed(Str("event_id"))?,
                Field::Timestamp => ev.timestamp_ms = map.next_value_seed(Millis)?,
                Field::EventType => ev.event_type = map.next_value_seed(Str("event_type"))?,
                Field::User => ev.user = map.next_value_seed(Str("user"))?,
                Field::SourceIp => ev.source_ip = map.next_value_seed(Str("source_ip"))?,
                Field::Status => ev.status = map.next_value_seed(Str("status"))?,
                Field::ThreatScore => ev.threat_score = map.next_value_seed(Number("threat_score"))?,
                Field::Location => ev.location = map.next_value_seed(Str("location"))?,
                Field::DestinationIp => ev.destination_ip = map.next_value_seed(Str("destination_ip"))?,
                Field::Metadata => {
                    if let Some(geo) = map.next_value_seed(Metadata)? {
                        ev.geo_location = Some(geo);
                    }
                }
                Field::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(ev)
    }
}

/// A string field (null = absent), borrowed when possible.
struct Str(&'static str);

impl<'de> DeserializeSeed<'de> for Str {
    type Value = Option<Cow<'de, str>>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Str {
    type Value = Option<Cow<'de, str>>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "a string for `{}`", self.0)
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Some(Cow::Borrowed(v)))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Some(Cow::Owned(v.to_owned())))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
}

/// `timestamp`: an integer number of milliseconds (null = absent).
struct Millis;

impl<'de> DeserializeSeed<'de> for Millis {
    type Value = Option<i64>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl Visitor<'_> for Millis {
    type Value = Option<i64>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an integer number of epoch milliseconds for `timestamp`")
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Some(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        i64::try_from(v).map(Some).map_err(|_| E::custom(format!("`timestamp` {v} is out of range")))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
}

/// A numeric field (null = absent).
struct Number(&'static str);

impl<'de> DeserializeSeed<'de> for Number {
    type Value = Option<f64>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl Visitor<'_> for Number {
    type Value = Option<f64>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "a number for `{}`", self.0)
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Ok(Some(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Some(v as f64))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Some(v as f64))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
}

/// `metadata`: an object (or null) whose `geo_location` is kept.
struct Metadata;

impl<'de> DeserializeSeed<'de> for Metadata {
    type Value = Option<Cow<'de, str>>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Metadata {
    type Value = Option<Cow<'de, str>>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object for `metadata`")
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut geo = None;
        while let Some(is_geo) = map.next_key_seed(Key(|k| k == "geo_location"))? {
            if is_geo {
                geo = map.next_value_seed(Str("metadata.geo_location"))?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(geo)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_the_reference_event() {
        let line = br#"{"event_id":"evt_1","timestamp":1761404996123,"event_type":"auth_attempt","source_ip":"192.168.1.10","user":"alice","threat_score":0.12,"status":"success","metadata":{"hostname":"ws-01","geo_location":"US-CA-San Francisco"},"auth_details":{"attempts_count":1,"failure_reason":null},"event_type":"auth_attempt"}"#;
        let e = decode_event(line).unwrap();
        assert_eq!(e.timestamp_ms, 1761404996123);
        assert_eq!(e.user.as_deref(), Some("alice"));
        assert_eq!(e.geo_location.as_deref(), Some("US-CA-San Francisco"));
        assert_eq!(e.threat_score, Some(0.12));
        assert!(matches!(e.user, Some(Cow::Borrowed(_))));
    }

    #[test]
    fn names_what_is_wrong() {
        let reason = |l: &str| decode_event(l.as_bytes()).unwrap_err();
        assert!(reason("{not json").starts_with("not valid JSON"));
        assert!(reason("[1,2]").contains("a JSON object"));
        assert_eq!(reason(r#"{"timestamp":1,"event_type":"x"}"#), "missing required field `event_id`");
        assert_eq!(reason(r#"{"event_id":"e","event_type":"x"}"#), "missing required field `timestamp`");
        assert_eq!(reason(r#"{"event_id":"e","timestamp":5}"#), "missing required field `event_type`");
        assert!(reason(r#"{"event_id":"e","timestamp":"soon","event_type":"x"}"#).contains("epoch milliseconds for `timestamp`"));
        assert!(reason(r#"{"event_id":"e","timestamp":1,"event_type":"x","user":7}"#).contains("a string for `user`"));
        assert!(reason(r#"{"event_id":"e","timestamp":1,"event_type":"x","threat_score":"hi"}"#).contains("a number for `threat_score`"));
    }

    #[test]
    fn nulls_are_absent_and_escapes_are_decoded() {
        let e = decode_event(br#"{"event_id":"e","timestamp":1,"event_type":"x","user":null,"metadata":null,"source_ip":"a\"b"}"#).unwrap();
        assert_eq!(e.user, None);
        assert_eq!(e.source_ip.as_deref(), Some("a\"b"));
    }
}
