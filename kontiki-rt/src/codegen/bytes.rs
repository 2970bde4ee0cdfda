//! [`Bytes`]: the Rust side of the IDL's `bytes`, in Kontiki's JSON form.

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Binary data; `{"__bytes__": true, "data": "<base64>"}` on the wire, as Kontiki's serializer
/// writes Python `bytes`.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Bytes(pub Vec<u8>);

impl Bytes {
    /// The bytes.
    pub fn into_vec(self) -> Vec<u8> {
        self.0
    }
}

impl std::ops::Deref for Bytes {
    type Target = Vec<u8>;
    fn deref(&self) -> &Vec<u8> {
        &self.0
    }
}

impl std::ops::DerefMut for Bytes {
    fn deref_mut(&mut self) -> &mut Vec<u8> {
        &mut self.0
    }
}

impl From<Vec<u8>> for Bytes {
    fn from(v: Vec<u8>) -> Self {
        Bytes(v)
    }
}

impl From<&[u8]> for Bytes {
    fn from(v: &[u8]) -> Self {
        Bytes(v.to_vec())
    }
}

impl<const N: usize> From<&[u8; N]> for Bytes {
    fn from(v: &[u8; N]) -> Self {
        Bytes(v.to_vec())
    }
}

impl From<Bytes> for Vec<u8> {
    fn from(b: Bytes) -> Self {
        b.0
    }
}

impl AsRef<[u8]> for Bytes {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl Serialize for Bytes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        crate::transport::wire::bytes_to_json(&self.0).serialize(s)
    }
}

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = serde_json::Value::deserialize(d)?;
        crate::transport::wire::bytes_from_json(&v)
            .map(Bytes)
            .ok_or_else(|| {
                D::Error::custom(
                    "expected Kontiki bytes {\"__bytes__\": true, \"data\": \"<base64>\"}",
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn bytes_use_kontiki_form() {
        let b = Bytes(vec![0, 1, 104, 105]);
        let v = serde_json::to_value(&b).unwrap();
        assert_eq!(v, json!({"__bytes__": true, "data": "AAFoaQ=="}));
        assert_eq!(serde_json::from_value::<Bytes>(v).unwrap(), b);
        assert!(serde_json::from_value::<Bytes>(json!("AAFoaQ==")).is_err());
    }
}
