//! `Text`: a record's key or value, held once however often it is read.
//!
//! A history of a million operations holds millions of records, most of them the same
//! few hundred thousand values read again and again (by every consumer, and once more
//! in every replica's final log). A `String` per occurrence cost an allocation each
//! and most of the memory; a `Text` is a shared, immutable string (`Arc<str>`), and the
//! parser interns every one it reads (`Interner`), so each distinct key or value is
//! allocated once and every record naming it holds a pointer.
//!
//! The interner is only ever probed, never iterated, so no hash order can reach a
//! verdict, and a `Text` compares, orders and hashes by its characters alone.

use std::borrow::Borrow;
use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use xxhash_rust::xxh3::xxh3_64;

/// An immutable string shared by every record that names it. Reads as a `&str`.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Text(Arc<str>);

impl Text {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Deref for Text {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for Text {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Borrow<str> for Text {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl From<&str> for Text {
    fn from(text: &str) -> Text {
        Text(Arc::from(text))
    }
}

impl From<String> for Text {
    fn from(text: String) -> Text {
        Text(Arc::from(text))
    }
}

impl From<&String> for Text {
    fn from(text: &String) -> Text {
        Text(Arc::from(text.as_str()))
    }
}

impl From<Text> for String {
    fn from(text: Text) -> String {
        text.0.to_string()
    }
}

/// Prints as the string would (`"v1"`), so debug output reads as it did with `String`.
impl fmt::Debug for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&*self.0, f)
    }
}

impl PartialEq<str> for Text {
    fn eq(&self, other: &str) -> bool {
        &*self.0 == other
    }
}

impl PartialEq<&str> for Text {
    fn eq(&self, other: &&str) -> bool {
        &*self.0 == *other
    }
}

impl PartialEq<String> for Text {
    fn eq(&self, other: &String) -> bool {
        &*self.0 == other.as_str()
    }
}

impl PartialEq<Text> for str {
    fn eq(&self, other: &Text) -> bool {
        self == &*other.0
    }
}

impl PartialEq<Text> for &str {
    fn eq(&self, other: &Text) -> bool {
        *self == &*other.0
    }
}

impl PartialEq<Text> for String {
    fn eq(&self, other: &Text) -> bool {
        self.as_str() == &*other.0
    }
}

impl serde::Serialize for Text {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for Text {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Text, D::Error> {
        // Outside the parser (a verdict read back, a test) nothing is interned.
        String::deserialize(deserializer).map(Text::from)
    }
}

/// Hands out one `Text` per distinct string: the parser's, for the life of one parse.
pub(crate) struct Interner {
    /// Open addressing, load at most one half; `None` marks an empty slot.
    slots: Vec<Option<(u64, Text)>>,
    mask: usize,
    len: usize,
}

impl Interner {
    pub(crate) fn new() -> Interner {
        let slots = 1 << 10;
        Interner { slots: vec![None; slots], mask: slots - 1, len: 0 }
    }

    /// The `Text` of `text`, made the first time it is asked for.
    pub(crate) fn intern(&mut self, text: &str) -> Text {
        let hash = xxh3_64(text.as_bytes());
        let mut slot = hash as usize & self.mask;
        while let Some((held_hash, held)) = &self.slots[slot] {
            if *held_hash == hash && held.as_str() == text {
                return held.clone();
            }
            slot = (slot + 1) & self.mask;
        }
        let made = Text::from(text);
        self.slots[slot] = Some((hash, made.clone()));
        self.len += 1;
        if self.len * 2 > self.slots.len() {
            self.grow();
        }
        made
    }

    fn grow(&mut self) {
        let size = self.slots.len() * 2;
        let mut slots: Vec<Option<(u64, Text)>> = vec![None; size];
        let mask = size - 1;
        for (hash, text) in self.slots.drain(..).flatten() {
            let mut slot = hash as usize & mask;
            while slots[slot].is_some() {
                slot = (slot + 1) & mask;
            }
            slots[slot] = Some((hash, text));
        }
        self.slots = slots;
        self.mask = mask;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interning_gives_one_text_per_string() {
        let mut interner = Interner::new();
        let texts: Vec<Text> =
            (0..5000).map(|n| interner.intern(&format!("v{}", n % 2500))).collect();
        for (n, text) in texts.iter().enumerate() {
            assert_eq!(text.as_str(), format!("v{}", n % 2500));
            assert!(Arc::ptr_eq(&text.0, &texts[n % 2500].0), "the same string is held once");
        }
        assert_eq!(interner.len, 2500);
        assert_eq!(format!("{:?}", texts[1]), "\"v1\"");
    }
}
