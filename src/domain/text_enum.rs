//! Enums that are stored and printed as lower-case words.

/// Declares an enum whose variants map to fixed lower-case words, with `as_str`, `FromStr`,
/// `TryFrom<String>` (used when decoding rows), `Display` and serde as those words. Parsing
/// also takes the kebab-case and upper-case spellings people type (`scim-target`,
/// `SCIM_TARGET`), so every enum flag of the CLI accepts both.
macro_rules! text_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
        pub enum $name {
            $($(#[$vdoc])* #[serde(rename = $text)] $variant),+
        }

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The stored and printed word.
            pub fn as_str(&self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl std::str::FromStr for $name {
            type Err = $crate::domain::InvalidInput;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                let word = s.trim().replace('-', "_").to_ascii_lowercase();
                match word.as_str() {
                    $($text => Ok($name::$variant),)+
                    _ => Err($crate::domain::InvalidInput::new(
                        stringify!($name),
                        format!(
                            "unknown value {:?}; expected one of: {}",
                            s,
                            [$($text),+].join(", ")
                        ),
                    )),
                }
            }
        }

        impl TryFrom<String> for $name {
            type Error = $crate::domain::InvalidInput;
            fn try_from(s: String) -> Result<Self, Self::Error> {
                s.parse()
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

pub(crate) use text_enum;
