//! PHIDs, Phabricator's object ids: `PHID-<type>-<random>`, stored in binary columns
//! (docs/phabricator-tables.md#phids-and-random-strings).
//!
//! A [`Phid`] is a PHID that came from Phabricator's tables or that phab-scim drew for a new
//! row: what the writers of `db::phabricator` take for the objects they point at, so that a
//! PHID cannot take the place of a name or an address among their arguments. An id a client
//! sent is still a `&str` until a row is found by it.

use std::fmt;

use super::{new_phid, new_xaction_phid};

/// The types of the objects phab-scim writes: the four letters `PhabricatorPHIDType::TYPECONST`
/// of the object's class (`PhabricatorPeopleUserPHIDType` is `USER`, and so on). Transactions
/// have no kind of their own here: their PHIDs name their object's ([`Phid::new_xaction`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PhidKind {
    /// `PhabricatorUser`: an account (a person or a bot).
    User,
    /// `PhabricatorProject`: a SCIM group.
    Project,
    /// `PhabricatorExternalAccount`: a login link.
    ExternalAccount,
    /// `PhabricatorExternalAccountIdentifier`: the identifier a login link is found by.
    ExternalAccountIdentifier,
    /// `PhabricatorUserEmail`: an address.
    Email,
}

impl PhidKind {
    /// Every kind, for [`Phid::kind`].
    const ALL: [PhidKind; 5] = [
        PhidKind::User,
        PhidKind::Project,
        PhidKind::ExternalAccount,
        PhidKind::ExternalAccountIdentifier,
        PhidKind::Email,
    ];

    /// The type constant: `USER`, `PROJ`, `XUSR`, `XIDT`, `EADR`.
    pub const fn code(self) -> &'static str {
        match self {
            PhidKind::User => "USER",
            PhidKind::Project => "PROJ",
            PhidKind::ExternalAccount => "XUSR",
            PhidKind::ExternalAccountIdentifier => "XIDT",
            PhidKind::Email => "EADR",
        }
    }
}

/// A PHID read from a table or drawn for a new row ([`Phid::new`]). Decodes from a binary or
/// text column and binds as a text parameter, as the `String`s it replaces did; it derefs to
/// `str`, so a reader that finds rows by any id (`&str`) takes it as it is. `Default` is the
/// empty text: no object (a request's context before its token is checked has no actor).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct Phid(String);

impl Phid {
    /// A new PHID of `kind`: `PHID-USER-` and 20 random characters ([`new_phid`]).
    pub fn new(kind: PhidKind) -> Self {
        Phid(new_phid(kind.code()))
    }

    /// A new PHID for a transaction on an object of `object_kind`: `PHID-XACT-USER-` and 15
    /// random characters ([`new_xaction_phid`]).
    pub fn new_xaction(object_kind: PhidKind) -> Self {
        Phid(new_xaction_phid(object_kind.code()))
    }

    /// The PHID as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The kind its prefix names, if it is one phab-scim writes.
    pub fn kind(&self) -> Option<PhidKind> {
        let code = self.0.strip_prefix("PHID-")?.split('-').next()?;
        PhidKind::ALL.into_iter().find(|k| k.code() == code)
    }

    /// Whether it is a PHID of `kind`.
    pub fn is(&self, kind: PhidKind) -> bool {
        self.kind() == Some(kind)
    }

    /// A fixture's PHID, taken as it is.
    #[cfg(test)]
    pub(crate) fn stored(text: impl Into<String>) -> Self {
        Phid(text.into())
    }
}

impl std::ops::Deref for Phid {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for Phid {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::borrow::Borrow<str> for Phid {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Phid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<Phid> for String {
    fn from(p: Phid) -> Self {
        p.0
    }
}

impl PartialEq<str> for Phid {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for Phid {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl PartialEq<String> for Phid {
    fn eq(&self, other: &String) -> bool {
        &self.0 == other
    }
}

impl sqlx::Type<sqlx::MySql> for Phid {
    /// Bound as text, like the `&str` and `String` PHIDs were.
    fn type_info() -> sqlx::mysql::MySqlTypeInfo {
        <str as sqlx::Type<sqlx::MySql>>::type_info()
    }
    /// Read from the binary PHID columns, or from text (an expression's result).
    fn compatible(ty: &sqlx::mysql::MySqlTypeInfo) -> bool {
        <crate::db::Bin as sqlx::Type<sqlx::MySql>>::compatible(ty)
    }
}

impl<'r> sqlx::Decode<'r, sqlx::MySql> for Phid {
    fn decode(value: sqlx::mysql::MySqlValueRef<'r>) -> Result<Self, sqlx::error::BoxDynError> {
        let bin = <crate::db::Bin as sqlx::Decode<sqlx::MySql>>::decode(value)?;
        Ok(Phid(String::from_utf8(bin.0)?))
    }
}

impl<'q> sqlx::Encode<'q, sqlx::MySql> for Phid {
    fn encode_by_ref(
        &self,
        buf: &mut <sqlx::MySql as sqlx::Database>::ArgumentBuffer,
    ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
        <&str as sqlx::Encode<sqlx::MySql>>::encode(self.0.as_str(), buf)
    }
    fn size_hint(&self) -> usize {
        self.0.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_phids_have_phabricators_shape_and_their_kind() {
        for kind in PhidKind::ALL {
            let p = Phid::new(kind);
            assert_eq!(p.len(), 30, "{p}");
            assert!(p.starts_with(&format!("PHID-{}-", kind.code())), "{p}");
            assert_eq!(p.kind(), Some(kind), "{p}");
            assert!(p.is(kind));
        }
    }

    #[test]
    fn transaction_phids_name_their_objects_kind() {
        let p = Phid::new_xaction(PhidKind::Project);
        assert_eq!(p.len(), 30, "{p}");
        assert!(p.starts_with("PHID-XACT-PROJ-"), "{p}");
        assert_eq!(p.kind(), None);
    }

    #[test]
    fn the_kind_is_read_from_the_prefix() {
        assert_eq!(
            Phid::stored("PHID-XUSR-abc").kind(),
            Some(PhidKind::ExternalAccount)
        );
        assert_eq!(Phid::stored("PHID-PROJ-x").kind(), Some(PhidKind::Project));
        assert_eq!(Phid::stored("PHID-XACT-USER-abc").kind(), None);
        assert_eq!(Phid::stored("USER-abc").kind(), None);
        assert_eq!(Phid::stored("").kind(), None);
        assert!(!Phid::stored("PHID-USERX-a").is(PhidKind::User));
    }
}
