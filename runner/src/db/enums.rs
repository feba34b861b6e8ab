//! The schema's enum types the runner writes, as Rust enums: sqlx binds and
//! reads them as the database type itself (no `::text` casts), serde and
//! strum give their labels. `harness/tests/it/schema.rs` checks each against
//! `enum_range()` of the migrated database, so a schema change that adds or
//! renames a label fails a test instead of a request.

use serde::{Deserialize, Serialize};

/// An enum type of the schema: its variants in the type's order, the case
/// its labels are written in (sqlx, serde and strum each told the same).
macro_rules! db_enum {
    ($(#[$doc:meta])* $name:ident = $type_name:tt, $case:tt { $($variant:ident),* $(,)? }) => {
        $(#[$doc])*
        #[derive(
            Debug,
            Clone,
            Copy,
            PartialEq,
            Eq,
            PartialOrd,
            Ord,
            sqlx::Type,
            Serialize,
            Deserialize,
            strum::EnumString,
            strum::IntoStaticStr,
            strum::VariantNames,
        )]
        #[sqlx(type_name = $type_name, rename_all = $case)]
        #[serde(rename_all = $case)]
        #[strum(serialize_all = $case)]
        pub enum $name {
            $($variant),*
        }

        impl $name {
            pub fn as_str(self) -> &'static str {
                self.into()
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

db_enum! {
    /// `queue_bucket`, most urgent first (the enum's order is the queue's).
    QueueBucket = "queue_bucket", "kebab-case" {
        UpdateExistingMp,
        Manual,
        Control,
        Hook,
        Reschedule,
        UpdateNewMp,
        MissingDeps,
        Default,
    }
}

db_enum! {
    /// `publish_status`.
    PublishStatus = "publish_status", "kebab-case" {
        Unknown,
        Blocked,
        NeedsManualReview,
        Rejected,
        Approved,
        Ignored,
    }
}

db_enum! {
    /// `vcs_type`.
    VcsType = "vcs_type", "lowercase" {
        Bzr,
        Git,
        Svn,
        Mtn,
        Hg,
        Arch,
        Cvs,
        Darcs,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strum::VariantNames;

    /// Each label parses back to its variant and serializes as itself.
    #[test]
    fn labels_round_trip() {
        fn check<T>()
        where
            T: VariantNames
                + std::str::FromStr
                + Serialize
                + for<'de> Deserialize<'de>
                + std::fmt::Display,
            <T as std::str::FromStr>::Err: std::fmt::Debug,
        {
            for label in T::VARIANTS {
                let v: T = label.parse().unwrap();
                assert_eq!(v.to_string(), *label);
                assert_eq!(serde_json::to_value(&v).unwrap(), *label);
                let back: T = serde_json::from_value(serde_json::json!(label)).unwrap();
                assert_eq!(back.to_string(), *label);
            }
        }
        check::<QueueBucket>();
        check::<PublishStatus>();
        check::<VcsType>();
        assert_eq!(QueueBucket::UpdateExistingMp.as_str(), "update-existing-mp");
        assert!("bogus".parse::<QueueBucket>().is_err());
        assert!(QueueBucket::UpdateExistingMp < QueueBucket::Default);
    }
}
