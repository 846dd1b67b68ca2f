//! The resource schemas scimdesk serves (RFC 7643 §4, §8.7.1): User with the Enterprise User
//! extension, and Group. Filters, PATCH and `/Schemas` all read these definitions, so what the
//! server says it supports is what it does.

/// Core User schema URN.
pub const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
/// Enterprise User extension URN.
pub const ENTERPRISE_USER_SCHEMA: &str =
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
/// Core Group schema URN.
pub const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";

/// An attribute's data type (RFC 7643 §2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttrType {
    /// Text.
    String,
    /// true or false.
    Boolean,
    /// A real number.
    Decimal,
    /// A whole number.
    Integer,
    /// An xsd:dateTime (RFC 3339) string.
    DateTime,
    /// A URI.
    Reference,
    /// Has sub-attributes.
    Complex,
    /// Base64 bytes.
    Binary,
}

impl AttrType {
    /// The keyword used in `/Schemas`.
    pub fn as_str(&self) -> &'static str {
        match self {
            AttrType::String => "string",
            AttrType::Boolean => "boolean",
            AttrType::Decimal => "decimal",
            AttrType::Integer => "integer",
            AttrType::DateTime => "dateTime",
            AttrType::Reference => "reference",
            AttrType::Complex => "complex",
            AttrType::Binary => "binary",
        }
    }
}

/// Who may change an attribute (RFC 7643 §2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mutability {
    /// Set by the service provider only.
    ReadOnly,
    /// Clients may change it.
    ReadWrite,
    /// Set once, then fixed.
    Immutable,
    /// Clients may set it, it is never returned.
    WriteOnly,
}

/// When an attribute is returned (RFC 7643 §2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Returned {
    /// Always, even if not asked for.
    Always,
    /// Never (e.g. `password`).
    Never,
    /// Unless excluded.
    Default,
    /// Only when asked for.
    Request,
}

/// How unique values must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Uniqueness {
    /// No rule.
    None,
    /// Unique within the organization.
    Server,
    /// Unique everywhere.
    Global,
}

/// One attribute definition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttrDef {
    /// Canonical name (attribute names are matched ignoring case).
    pub name: &'static str,
    /// Data type.
    pub ty: AttrType,
    /// Whether it holds a list.
    pub multi_valued: bool,
    /// Whether string comparison respects case.
    pub case_exact: bool,
    /// Whether a client must give it.
    pub required: bool,
    /// Who may change it.
    pub mutability: Mutability,
    /// When it is returned.
    pub returned: Returned,
    /// Uniqueness rule.
    pub uniqueness: Uniqueness,
    /// Sub-attributes of a complex attribute.
    pub sub_attributes: &'static [AttrDef],
    /// For references: what they may point at.
    pub reference_types: &'static [&'static str],
    /// Description for `/Schemas`.
    pub description: &'static str,
}

impl AttrDef {
    /// A sub-attribute by name, ignoring case.
    pub fn sub(&self, name: &str) -> Option<&'static AttrDef> {
        find(self.sub_attributes, name)
    }
}

/// An attribute by name among `defs`, ignoring case.
pub fn find(defs: &'static [AttrDef], name: &str) -> Option<&'static AttrDef> {
    defs.iter().find(|d| d.name.eq_ignore_ascii_case(name))
}

const fn attr(name: &'static str, ty: AttrType, description: &'static str) -> AttrDef {
    AttrDef {
        name,
        ty,
        multi_valued: false,
        case_exact: false,
        required: false,
        mutability: Mutability::ReadWrite,
        returned: Returned::Default,
        uniqueness: Uniqueness::None,
        sub_attributes: &[],
        reference_types: &[],
        description,
    }
}

const fn string(name: &'static str, description: &'static str) -> AttrDef {
    attr(name, AttrType::String, description)
}

const fn multi(mut a: AttrDef, sub: &'static [AttrDef]) -> AttrDef {
    a.multi_valued = true;
    a.sub_attributes = sub;
    a
}

const fn complex(
    name: &'static str,
    sub: &'static [AttrDef],
    description: &'static str,
) -> AttrDef {
    let mut a = attr(name, AttrType::Complex, description);
    a.sub_attributes = sub;
    a
}

const fn read_only(mut a: AttrDef) -> AttrDef {
    a.mutability = Mutability::ReadOnly;
    a
}

const fn case_exact(mut a: AttrDef) -> AttrDef {
    a.case_exact = true;
    a
}

const fn reference(name: &'static str, types: &'static [&'static str], d: &'static str) -> AttrDef {
    let mut a = attr(name, AttrType::Reference, d);
    a.reference_types = types;
    a
}

/// Sub-attributes of the common multi-valued shape: value, display, type, primary.
const fn multi_sub(value: AttrDef) -> [AttrDef; 4] {
    [
        value,
        string(
            "display",
            "A human-readable name, primarily used for display purposes.",
        ),
        string(
            "type",
            "A label indicating the attribute's function, e.g., 'work' or 'home'.",
        ),
        attr(
            "primary",
            AttrType::Boolean,
            "A Boolean value indicating the 'primary' or preferred attribute value.",
        ),
    ]
}

const EMAIL_SUB: [AttrDef; 4] = multi_sub(string("value", "Email address for the user."));
const PHONE_SUB: [AttrDef; 4] = multi_sub(string("value", "Phone number of the user."));
const IMS_SUB: [AttrDef; 4] = multi_sub(string("value", "Instant messaging address."));
const PHOTO_SUB: [AttrDef; 4] = multi_sub(reference("value", &["external"], "URL of a photo."));
const ROLE_SUB: [AttrDef; 4] = multi_sub(string("value", "The value of a role."));
const ENTITLEMENT_SUB: [AttrDef; 4] = multi_sub(string("value", "The value of an entitlement."));
const X509_SUB: [AttrDef; 4] = multi_sub(attr("value", AttrType::Binary, "The certificate."));

const NAME_SUB: &[AttrDef] = &[
    string("formatted", "The full name, formatted for display."),
    string("familyName", "The family name."),
    string("givenName", "The given name."),
    string("middleName", "The middle name(s)."),
    string("honorificPrefix", "Honorific prefix, e.g., 'Ms.'."),
    string("honorificSuffix", "Honorific suffix, e.g., 'III'."),
];

const ADDRESS_SUB: &[AttrDef] = &[
    string("formatted", "The full mailing address."),
    string("streetAddress", "The full street address."),
    string("locality", "The city or locality."),
    string("region", "The state or region."),
    string("postalCode", "The zip code or postal code."),
    string("country", "The country name (ISO 3166-1 alpha-2)."),
    string("type", "'work', 'home' or 'other'."),
    attr(
        "primary",
        AttrType::Boolean,
        "Whether this is the primary address.",
    ),
];

const GROUP_REF_SUB: &[AttrDef] = &[
    read_only(string("value", "The identifier of the user's group.")),
    read_only(reference(
        "$ref",
        &["User", "Group"],
        "The URI of the group.",
    )),
    read_only(string("display", "The display name of the group.")),
    read_only(string("type", "'direct' or 'indirect'.")),
];

const META_SUB: &[AttrDef] = &[
    read_only(case_exact(string(
        "resourceType",
        "The name of the resource type.",
    ))),
    read_only(attr(
        "created",
        AttrType::DateTime,
        "When the resource was added.",
    )),
    read_only(attr(
        "lastModified",
        AttrType::DateTime,
        "When the resource was last changed.",
    )),
    read_only(case_exact(reference(
        "location",
        &["uri"],
        "The URI of the resource.",
    ))),
    read_only(case_exact(string(
        "version",
        "The version (ETag) of the resource.",
    ))),
];

/// `id`: assigned by scimdesk, always returned, never changed.
const ID: AttrDef = {
    let mut a = read_only(case_exact(string(
        "id",
        "Unique identifier assigned by the service provider.",
    )));
    a.returned = Returned::Always;
    a.uniqueness = Uniqueness::Server;
    a
};
const EXTERNAL_ID: AttrDef = case_exact(string(
    "externalId",
    "Identifier assigned by the provisioning client.",
));
const META: AttrDef = read_only(complex("meta", META_SUB, "Resource metadata."));

/// `schemas`: the URNs of the schemas a resource uses (filterable, RFC 7644 §3.4.2.2).
const SCHEMAS: AttrDef = {
    let mut a = read_only(reference(
        "schemas",
        &["uri"],
        "The schemas the resource uses.",
    ));
    a.multi_valued = true;
    a.returned = Returned::Always;
    a
};

/// Attributes common to every resource (RFC 7643 §3.1).
pub const COMMON_ATTRIBUTES: &[AttrDef] = &[SCHEMAS, ID, EXTERNAL_ID, META];

/// The core User attributes (RFC 7643 §4.1).
pub const USER_ATTRIBUTES: &[AttrDef] = &[
    {
        let mut a = string(
            "userName",
            "Unique identifier for the User, used to sign in.",
        );
        a.required = true;
        a.uniqueness = Uniqueness::Server;
        a
    },
    complex("name", NAME_SUB, "The components of the user's real name."),
    string("displayName", "The name of the User, suitable for display."),
    string("nickName", "The casual way to address the user."),
    reference(
        "profileUrl",
        &["external"],
        "A URI of the User's online profile.",
    ),
    string("title", "The user's title, such as 'Vice President'."),
    string(
        "userType",
        "The relationship between the organization and the user.",
    ),
    string(
        "preferredLanguage",
        "The User's preferred written or spoken language.",
    ),
    string("locale", "The User's default location."),
    string("timezone", "The User's time zone in 'Olson' format."),
    attr(
        "active",
        AttrType::Boolean,
        "The User's administrative status.",
    ),
    {
        let mut a = string("password", "The User's cleartext password.");
        a.mutability = Mutability::WriteOnly;
        a.returned = Returned::Never;
        a
    },
    multi(
        attr("emails", AttrType::Complex, "Email addresses for the user."),
        &EMAIL_SUB,
    ),
    multi(
        attr(
            "phoneNumbers",
            AttrType::Complex,
            "Phone numbers for the User.",
        ),
        &PHONE_SUB,
    ),
    multi(
        attr("ims", AttrType::Complex, "Instant messaging addresses."),
        &IMS_SUB,
    ),
    multi(
        attr("photos", AttrType::Complex, "URLs of photos of the User."),
        &PHOTO_SUB,
    ),
    multi(
        attr(
            "addresses",
            AttrType::Complex,
            "A physical mailing address.",
        ),
        ADDRESS_SUB,
    ),
    read_only(multi(
        attr("groups", AttrType::Complex, "Groups the user belongs to."),
        GROUP_REF_SUB,
    )),
    multi(
        attr(
            "entitlements",
            AttrType::Complex,
            "Entitlements of the User.",
        ),
        &ENTITLEMENT_SUB,
    ),
    multi(
        attr("roles", AttrType::Complex, "Roles of the User."),
        &ROLE_SUB,
    ),
    multi(
        attr("x509Certificates", AttrType::Complex, "X.509 certificates."),
        &X509_SUB,
    ),
];

const MANAGER_SUB: &[AttrDef] = &[
    string(
        "value",
        "The id of the SCIM resource representing the User's manager.",
    ),
    reference("$ref", &["User"], "The URI of the manager."),
    read_only(string(
        "displayName",
        "The displayName of the User's manager.",
    )),
];

/// The Enterprise User extension (RFC 7643 §4.3).
pub const ENTERPRISE_USER_ATTRIBUTES: &[AttrDef] = &[
    string(
        "employeeNumber",
        "Numeric or alphanumeric identifier assigned to a person.",
    ),
    string("costCenter", "Identifies the name of a cost center."),
    string("organization", "Identifies the name of an organization."),
    string("division", "Identifies the name of a division."),
    string("department", "Identifies the name of a department."),
    complex("manager", MANAGER_SUB, "The User's manager."),
];

const MEMBER_SUB: &[AttrDef] = &[
    {
        let mut a = case_exact(string("value", "Identifier of the member of this Group."));
        a.mutability = Mutability::Immutable;
        a
    },
    {
        let mut a = reference("$ref", &["User", "Group"], "The URI of the member.");
        a.mutability = Mutability::Immutable;
        a
    },
    read_only(string("display", "The display name of the member.")),
    {
        let mut a = string("type", "'User' or 'Group'.");
        a.mutability = Mutability::Immutable;
        a
    },
];

/// The core Group attributes (RFC 7643 §4.2).
pub const GROUP_ATTRIBUTES: &[AttrDef] = &[
    {
        let mut a = string("displayName", "A human-readable name for the Group.");
        a.required = true;
        a
    },
    multi(
        attr(
            "members",
            AttrType::Complex,
            "A list of members of the Group.",
        ),
        MEMBER_SUB,
    ),
];

/// One schema: its URN, name and attributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchemaDef {
    /// The URN.
    pub id: &'static str,
    /// Short name.
    pub name: &'static str,
    /// What it describes.
    pub description: &'static str,
    /// Its attributes (the common ones are added for core schemas).
    pub attributes: &'static [AttrDef],
}

/// A resource type: its core schema and extensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResourceSchema {
    /// `User` or `Group`.
    pub name: &'static str,
    /// The endpoint, e.g. `/Users`.
    pub endpoint: &'static str,
    /// The core schema.
    pub core: SchemaDef,
    /// Extension schemas.
    pub extensions: &'static [SchemaDef],
}

/// The User resource type.
pub const USER: ResourceSchema = ResourceSchema {
    name: "User",
    endpoint: "/Users",
    core: SchemaDef {
        id: USER_SCHEMA,
        name: "User",
        description: "User Account",
        attributes: USER_ATTRIBUTES,
    },
    extensions: &[SchemaDef {
        id: ENTERPRISE_USER_SCHEMA,
        name: "EnterpriseUser",
        description: "Enterprise User",
        attributes: ENTERPRISE_USER_ATTRIBUTES,
    }],
};

/// The Group resource type.
pub const GROUP: ResourceSchema = ResourceSchema {
    name: "Group",
    endpoint: "/Groups",
    core: SchemaDef {
        id: GROUP_SCHEMA,
        name: "Group",
        description: "Group",
        attributes: GROUP_ATTRIBUTES,
    },
    extensions: &[],
};

impl ResourceSchema {
    /// The schema a URN names (core or extension), ignoring case.
    pub fn schema(&self, urn: &str) -> Option<&SchemaDef> {
        if self.core.id.eq_ignore_ascii_case(urn) {
            return Some(&self.core);
        }
        self.extensions
            .iter()
            .find(|e| e.id.eq_ignore_ascii_case(urn))
    }

    /// Whether `urn` is one of this resource's extension schemas.
    pub fn is_extension(&self, urn: &str) -> bool {
        self.extensions
            .iter()
            .any(|e| e.id.eq_ignore_ascii_case(urn))
    }

    /// A top-level attribute of the schema `urn` (default: core, including common attributes).
    pub fn attribute(&self, urn: Option<&str>, name: &str) -> Option<&'static AttrDef> {
        match urn {
            None => find(COMMON_ATTRIBUTES, name).or_else(|| find(self.core.attributes, name)),
            Some(u) if self.core.id.eq_ignore_ascii_case(u) => {
                find(COMMON_ATTRIBUTES, name).or_else(|| find(self.core.attributes, name))
            }
            Some(u) => self.schema(u).and_then(|s| find(s.attributes, name)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_ignore_case() {
        assert_eq!(
            USER.attribute(None, "USERNAME").map(|a| a.name),
            Some("userName")
        );
        assert_eq!(
            USER.attribute(Some(USER_SCHEMA), "emails")
                .map(|a| a.multi_valued),
            Some(true)
        );
        let mgr = USER
            .attribute(
                Some("URN:IETF:PARAMS:SCIM:SCHEMAS:EXTENSION:ENTERPRISE:2.0:USER"),
                "Manager",
            )
            .unwrap();
        assert_eq!(mgr.sub("VALUE").map(|a| a.name), Some("value"));
        assert!(
            USER.attribute(None, "manager").is_none(),
            "extension attributes need their URN"
        );
        assert!(
            GROUP
                .attribute(None, "members")
                .unwrap()
                .sub("value")
                .unwrap()
                .case_exact
        );
        assert_eq!(
            USER.attribute(None, "password").unwrap().returned,
            Returned::Never
        );
        assert_eq!(
            USER.attribute(None, "id").unwrap().mutability,
            Mutability::ReadOnly
        );
    }
}
