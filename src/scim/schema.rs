//! The static attribute table of every resource phab-scim serves (RFC 7643 §4, §7). It drives
//! request normalisation, PATCH path resolution, filter resolution and `/Schemas`, so the
//! discovery endpoints describe exactly what the service does.

/// Schema URNs.
pub mod urn {
    pub const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
    pub const GROUP: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
    pub const ENTERPRISE_USER: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
    pub const LIST_RESPONSE: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
    pub const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
    pub const SEARCH_REQUEST: &str = "urn:ietf:params:scim:api:messages:2.0:SearchRequest";
    pub const ERROR: &str = "urn:ietf:params:scim:api:messages:2.0:Error";
    pub const BULK_REQUEST: &str = "urn:ietf:params:scim:api:messages:2.0:BulkRequest";
    pub const BULK_RESPONSE: &str = "urn:ietf:params:scim:api:messages:2.0:BulkResponse";
    pub const SERVICE_PROVIDER_CONFIG: &str =
        "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig";
    pub const RESOURCE_TYPE: &str = "urn:ietf:params:scim:schemas:core:2.0:ResourceType";
    pub const SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Schema";
    /// OneLogin's non-standard spellings, read as the real ones
    /// (docs/scim-clients.md#other-clients).
    pub const ONELOGIN_ENTERPRISE: &str = "urn:scim:schemas:extension:enterprise:2.0";
}

/// SCIM data types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ty {
    String,
    Boolean,
    Decimal,
    Integer,
    DateTime,
    Binary,
    Reference,
    Complex,
}

impl Ty {
    /// The RFC spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Ty::String => "string",
            Ty::Boolean => "boolean",
            Ty::Decimal => "decimal",
            Ty::Integer => "integer",
            Ty::DateTime => "dateTime",
            Ty::Binary => "binary",
            Ty::Reference => "reference",
            Ty::Complex => "complex",
        }
    }
}

/// RFC 7643 §7 `mutability`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mutability {
    ReadOnly,
    ReadWrite,
    Immutable,
    WriteOnly,
}

impl Mutability {
    /// The RFC spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Mutability::ReadOnly => "readOnly",
            Mutability::ReadWrite => "readWrite",
            Mutability::Immutable => "immutable",
            Mutability::WriteOnly => "writeOnly",
        }
    }
}

/// RFC 7643 §7 `returned`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Returned {
    Always,
    Never,
    Default,
    Request,
}

impl Returned {
    /// The RFC spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Returned::Always => "always",
            Returned::Never => "never",
            Returned::Default => "default",
            Returned::Request => "request",
        }
    }
}

/// One attribute definition.
#[derive(Debug, Clone, Copy)]
pub struct Attr {
    pub name: &'static str,
    pub ty: Ty,
    pub multi: bool,
    pub sub: &'static [Attr],
    pub mutability: Mutability,
    pub returned: Returned,
    pub case_exact: bool,
    pub required: bool,
    /// `none`, `server` or `global`.
    pub uniqueness: &'static str,
    pub canonical: &'static [&'static str],
    pub reference_types: &'static [&'static str],
    pub description: &'static str,
}

const fn attr(name: &'static str, ty: Ty, description: &'static str) -> Attr {
    Attr {
        name,
        ty,
        multi: false,
        sub: &[],
        mutability: Mutability::ReadWrite,
        returned: Returned::Default,
        case_exact: false,
        required: false,
        uniqueness: "none",
        canonical: &[],
        reference_types: &[],
        description,
    }
}

const fn string(name: &'static str, description: &'static str) -> Attr {
    attr(name, Ty::String, description)
}

const fn complex(name: &'static str, sub: &'static [Attr], description: &'static str) -> Attr {
    let mut a = attr(name, Ty::Complex, description);
    a.sub = sub;
    a
}

const fn multi(mut a: Attr) -> Attr {
    a.multi = true;
    a
}

const fn read_only(mut a: Attr) -> Attr {
    a.mutability = Mutability::ReadOnly;
    a
}

const fn canonical(mut a: Attr, values: &'static [&'static str]) -> Attr {
    a.canonical = values;
    a
}

const fn refs(mut a: Attr, types: &'static [&'static str]) -> Attr {
    a.reference_types = types;
    a
}

const PRIMARY: Attr = attr("primary", Ty::Boolean, "Marks the preferred value.");
const DISPLAY: Attr = string("display", "A human-readable name.");

const NAME_SUB: &[Attr] = &[
    string("formatted", "The full name, formatted for display."),
    string("familyName", "The family name."),
    string("givenName", "The given name."),
    string("middleName", "The middle name(s)."),
    string("honorificPrefix", "Honorific prefix, e.g. Ms."),
    string("honorificSuffix", "Honorific suffix, e.g. III."),
];

const EMAIL_SUB: &[Attr] = &[
    string(
        "value",
        "The email address; the primary one becomes the Phabricator address.",
    ),
    DISPLAY,
    canonical(
        string("type", "work, home or other."),
        &["work", "home", "other"],
    ),
    PRIMARY,
];

const PHONE_SUB: &[Attr] = &[
    string("value", "The phone number."),
    DISPLAY,
    canonical(
        string("type", "work, home, mobile, fax, pager or other."),
        &["work", "home", "mobile", "fax", "pager", "other"],
    ),
    PRIMARY,
];

const IMS_SUB: &[Attr] = &[
    string("value", "The instant messaging address."),
    DISPLAY,
    string("type", "The kind of service."),
    PRIMARY,
];

const PHOTO_SUB: &[Attr] = &[
    refs(
        attr("value", Ty::Reference, "URL of a photo."),
        &["external"],
    ),
    DISPLAY,
    canonical(
        string("type", "photo or thumbnail."),
        &["photo", "thumbnail"],
    ),
    PRIMARY,
];

const ADDRESS_SUB: &[Attr] = &[
    string("formatted", "The full mailing address."),
    string("streetAddress", "Street address."),
    string("locality", "City or locality."),
    string("region", "State or region."),
    string("postalCode", "Postal code."),
    string("country", "Country (ISO 3166-1 alpha-2)."),
    canonical(
        string("type", "work, home or other."),
        &["work", "home", "other"],
    ),
    PRIMARY,
];

const GROUP_REF_SUB: &[Attr] = &[
    read_only(string("value", "The id of the group (its project PHID).")),
    read_only(refs(
        attr("$ref", Ty::Reference, "URI of the group."),
        &["Group"],
    )),
    read_only(string("display", "The group's displayName.")),
    read_only(canonical(
        string("type", "direct."),
        &["direct", "indirect"],
    )),
];

const VALUE_DISPLAY_TYPE_PRIMARY: &[Attr] = &[
    string("value", "The value."),
    DISPLAY,
    string("type", "A label for the value."),
    PRIMARY,
];

const CERT_SUB: &[Attr] = &[
    attr("value", Ty::Binary, "A DER certificate, base64."),
    DISPLAY,
    string("type", "A label for the value."),
    PRIMARY,
];

/// Attributes every resource has (RFC 7643 §3.1).
pub const COMMON: &[Attr] = &[
    {
        let mut a = read_only(string("id", "Stable identifier: the Phabricator PHID."));
        a.returned = Returned::Always;
        a.case_exact = true;
        a.uniqueness = "server";
        a
    },
    {
        let mut a = string("externalId", "The identifier the IdP assigns.");
        a.case_exact = true;
        a
    },
    read_only(complex(
        "meta",
        &[
            read_only(string("resourceType", "User or Group.")),
            read_only(attr(
                "created",
                Ty::DateTime,
                "When the resource was created.",
            )),
            read_only(attr("lastModified", Ty::DateTime, "When it last changed.")),
            read_only(refs(
                attr("location", Ty::Reference, "Its URI."),
                &["User", "Group"],
            )),
            read_only(string("version", "Its weak ETag.")),
        ],
        "Resource metadata.",
    )),
];

/// The User schema (RFC 7643 §4.1).
pub const USER: &[Attr] = &[
    {
        let mut a = string("userName", "The IdP's unique login name, kept verbatim.");
        a.required = true;
        a.uniqueness = "server";
        a
    },
    complex("name", NAME_SUB, "The person's name."),
    string(
        "displayName",
        "Name to display; becomes the Phabricator real name.",
    ),
    string("nickName", "Casual name."),
    refs(
        attr("profileUrl", Ty::Reference, "Profile URL."),
        &["external"],
    ),
    string("title", "Job title."),
    string("userType", "Bot and Agent make a Phabricator bot account."),
    string("preferredLanguage", "Preferred language."),
    string("locale", "Locale."),
    string("timezone", "Time zone."),
    attr(
        "active",
        Ty::Boolean,
        "false disables the Phabricator account and ends its sessions.",
    ),
    {
        let mut a = string(
            "password",
            "Accepted and discarded: accounts log in through SSO.",
        );
        a.mutability = Mutability::WriteOnly;
        a.returned = Returned::Never;
        a.case_exact = true;
        a
    },
    multi(complex("emails", EMAIL_SUB, "Email addresses.")),
    multi(complex("phoneNumbers", PHONE_SUB, "Phone numbers.")),
    multi(complex("ims", IMS_SUB, "Instant messaging addresses.")),
    multi(complex("photos", PHOTO_SUB, "Photos.")),
    multi(complex("addresses", ADDRESS_SUB, "Physical addresses.")),
    read_only(multi(complex(
        "groups",
        GROUP_REF_SUB,
        "Groups (projects) the user is a member of.",
    ))),
    multi(complex(
        "entitlements",
        VALUE_DISPLAY_TYPE_PRIMARY,
        "Entitlements.",
    )),
    multi(complex("roles", VALUE_DISPLAY_TYPE_PRIMARY, "Roles.")),
    multi(complex("x509Certificates", CERT_SUB, "Certificates.")),
];

/// The enterprise User extension (RFC 7643 §4.3).
pub const ENTERPRISE_USER: &[Attr] = &[
    string("employeeNumber", "Employee number."),
    string("costCenter", "Cost center."),
    string("organization", "Organization."),
    string("division", "Division."),
    string("department", "Department."),
    complex(
        "manager",
        &[
            string("value", "The manager's id."),
            refs(attr("$ref", Ty::Reference, "The manager's URI."), &["User"]),
            read_only(string("displayName", "The manager's name.")),
        ],
        "The user's manager.",
    ),
];

const MEMBER_SUB: &[Attr] = &[
    {
        let mut a = string("value", "The id of a member user.");
        a.mutability = Mutability::Immutable;
        a
    },
    {
        let mut a = refs(attr("$ref", Ty::Reference, "URI of the member."), &["User"]);
        a.mutability = Mutability::Immutable;
        a
    },
    {
        // RFC 7643 §2.4: `display` is read-only; it is the member's Phabricator name,
        // not what a client sent, so it is only returned when asked for by name
        // (`attributes=members.display`): a client reading back the members it wrote
        // gets exactly those.
        let mut a = read_only(string("display", "The member's Phabricator name."));
        a.returned = Returned::Request;
        a
    },
    {
        let mut a = canonical(string("type", "User."), &["User", "Group"]);
        a.mutability = Mutability::Immutable;
        a
    },
];

/// The Group schema (RFC 7643 §4.2).
pub const GROUP: &[Attr] = &[
    {
        let mut a = string("displayName", "The group's name; becomes the project name.");
        a.required = true;
        a.uniqueness = "server";
        a
    },
    multi(complex(
        "members",
        MEMBER_SUB,
        "Members: users only (Phabricator projects have no nested members).",
    )),
];

/// Which resource a schema lookup is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    User,
    Group,
}

impl Resource {
    /// The core schema URN.
    pub fn core_urn(self) -> &'static str {
        match self {
            Resource::User => urn::USER,
            Resource::Group => urn::GROUP,
        }
    }
    /// The core attributes.
    pub fn core_attrs(self) -> &'static [Attr] {
        match self {
            Resource::User => USER,
            Resource::Group => GROUP,
        }
    }
    /// The extension schemas: (URN, attributes).
    pub fn extensions(self) -> &'static [(&'static str, &'static [Attr])] {
        match self {
            Resource::User => &[(urn::ENTERPRISE_USER, ENTERPRISE_USER)],
            Resource::Group => &[],
        }
    }
    /// `User` or `Group`.
    pub fn name(self) -> &'static str {
        match self {
            Resource::User => "User",
            Resource::Group => "Group",
        }
    }
}

/// Where a resolved attribute lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Core or common attribute: a top-level key.
    Core,
    /// Extension attribute: under the extension URN key.
    Extension(&'static str),
}

/// Finds a sub-attribute by name, case-insensitively.
pub fn find_in(attrs: &'static [Attr], name: &str) -> Option<&'static Attr> {
    attrs.iter().find(|a| a.name.eq_ignore_ascii_case(name))
}

/// Canonical spelling of a known extension URN (accepting OneLogin's variant), if any.
pub fn extension_urn(res: Resource, urn_text: &str) -> Option<&'static str> {
    let u = if urn_text.eq_ignore_ascii_case(urn::ONELOGIN_ENTERPRISE) {
        urn::ENTERPRISE_USER
    } else {
        urn_text
    };
    res.extensions()
        .iter()
        .find(|(x, _)| x.eq_ignore_ascii_case(u))
        .map(|(x, _)| *x)
}

/// Resolves a top-level attribute name with an optional URN (core or extension).
pub fn resolve(
    res: Resource,
    urn_text: Option<&str>,
    name: &str,
) -> Option<(Scope, &'static Attr)> {
    match urn_text {
        // An unqualified extension attribute name (Microsoft's test suite sends `"Department"`
        // at top level) is not RFC: only qualified ones resolve.
        None => find_in(COMMON, name)
            .or_else(|| find_in(res.core_attrs(), name))
            .map(|a| (Scope::Core, a)),
        Some(u) if u.eq_ignore_ascii_case(res.core_urn()) => find_in(COMMON, name)
            .or_else(|| find_in(res.core_attrs(), name))
            .map(|a| (Scope::Core, a)),
        Some(u) => {
            let ext = extension_urn(res, u)?;
            let attrs = res
                .extensions()
                .iter()
                .find(|(x, _)| *x == ext)
                .map(|(_, a)| *a)?;
            find_in(attrs, name).map(|a| (Scope::Extension(ext), a))
        }
    }
}

/// Splits `urn:...:User:attr.sub` into (URN, `attr.sub`). Returns None for an unqualified name.
pub fn split_urn(path: &str) -> Option<(&str, &str)> {
    if !path.get(..4)?.eq_ignore_ascii_case("urn:") {
        return None;
    }
    let idx = path.rfind(':')?;
    Some((&path[..idx], &path[idx + 1..]))
}
