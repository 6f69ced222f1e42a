//! Projection of a stored JSON object onto a few of its top-level members, so that a
//! scan that needs a record's small fields (its id, digest, size, mtime) does not copy
//! its body into Python and parse it there.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;

/// project() of a stored value, which may be a zstd frame (compress.rs): decompressed
/// first. None when it is no JSON object, or a frame that does not decompress, so that
/// the caller returns it whole and its own decoding reports it.
pub fn project_stored(value: &[u8], fields: &[String]) -> Option<Vec<u8>> {
    if crate::compress::is_compressed(value) {
        let plain = crate::compress::decompress(value).ok()?;
        return project(&plain, fields);
    }
    project(value, fields)
}

/// The JSON object of the members of `value` named in `fields`, in the order they
/// appear in `value` (their values byte for byte as stored); None when `value` is no
/// JSON object, so that the caller returns it whole and its own decoding reports it.
pub fn project(value: &[u8], fields: &[String]) -> Option<Vec<u8>> {
    let mut de = serde_json::Deserializer::from_slice(value);
    let out = Members(fields).deserialize(&mut de).ok()?;
    de.end().ok()?;
    Some(out)
}

struct Members<'f>(&'f [String]);

impl<'de> DeserializeSeed<'de> for Members<'_> {
    type Value = Vec<u8>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Vec<u8>, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Members<'_> {
    type Value = Vec<u8>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Vec<u8>, A::Error> {
        let mut out = Vec::with_capacity(64 * self.0.len() + 2);
        out.push(b'{');
        while let Some(Name(name)) = map.next_key::<Name<'de>>()? {
            if self.0.iter().any(|f| *f == name) {
                let raw: &'de RawValue = map.next_value()?;
                if out.len() > 1 {
                    out.push(b',');
                }
                serde_json::to_writer(&mut out, name.as_ref()).map_err(de::Error::custom)?;
                out.push(b':');
                out.extend_from_slice(raw.get().as_bytes());
            } else {
                map.next_value::<IgnoredAny>()?; // skipped, never copied
            }
        }
        out.push(b'}');
        Ok(out)
    }
}

/// A member's name, borrowed from the value unless it holds an escape.
struct Name<'de>(Cow<'de, str>);

impl<'de> de::Deserialize<'de> for Name<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct NameVisitor;
        impl<'de> Visitor<'de> for NameVisitor {
            type Value = Name<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a member name")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Name<'de>, E> {
                Ok(Name(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Name<'de>, E> {
                Ok(Name(Cow::Owned(v.to_owned())))
            }
        }
        d.deserialize_str(NameVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::{project, project_stored};

    fn p(value: &str, fields: &[&str]) -> Option<String> {
        let fields: Vec<String> = fields.iter().map(|s| s.to_string()).collect();
        project(value.as_bytes(), &fields).map(|v| String::from_utf8(v).unwrap())
    }

    #[test]
    fn keeps_only_the_named_members() {
        let v = r#"{"body":"x [[y]] \"q\"","id":"a","n":[1,{"k":2}],"size":3,"z\u0041":null}"#;
        assert_eq!(
            p(v, &["id", "size", "zA"]).unwrap(),
            r#"{"id":"a","size":3,"zA":null}"#
        );
        assert_eq!(p(v, &["n"]).unwrap(), r#"{"n":[1,{"k":2}]}"#);
        assert_eq!(p(v, &["absent"]).unwrap(), "{}");
    }

    #[test]
    fn no_object_is_none() {
        for bad in ["[1]", "\"s\"", "{\"a\":", "{\"a\":1} x", "", "{\"a\":1,}"] {
            assert_eq!(p(bad, &["a"]), None, "{bad}");
        }
    }

    #[test]
    fn a_compressed_value_is_projected_from_its_content() {
        let v = br#"{"body":"long long long long long long","id":"a","size":3}"#;
        let fields = vec!["id".to_string()];
        let c = crate::compress::compress(v, 3).unwrap();
        assert_eq!(project_stored(&c, &fields).unwrap(), br#"{"id":"a"}"#);
        assert_eq!(project_stored(v, &fields).unwrap(), br#"{"id":"a"}"#);
        let mut bad = c.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert_eq!(project_stored(&bad, &fields), None);
        let not_json = crate::compress::compress(b"[1]", 3).unwrap();
        assert_eq!(project_stored(&not_json, &fields), None);
    }
}
