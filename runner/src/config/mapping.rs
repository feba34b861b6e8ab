//! From the tree to the typed structs: names, types and cardinality checked
//! against config.proto, one function per message.

use super::*;

/// Per-message state: which singular fields and oneof member were seen.
pub(super) struct Reader<'a> {
    pub(super) ty: &'static str,
    pub(super) seen: HashSet<&'a str>,
    pub(super) oneof: Option<&'a str>,
}

impl<'a> Reader<'a> {
    pub(super) fn new(ty: &'static str) -> Self {
        Reader {
            ty,
            seen: HashSet::new(),
            oneof: None,
        }
    }

    pub(super) fn err(&self, f: &Field, message: String) -> ConfigError {
        ConfigError::at(f.line, f.column, Some(&f.name), message)
    }

    pub(super) fn unknown(&self, f: &Field) -> ConfigError {
        self.err(f, format!("unknown field \"{}\" in {}", f.name, self.ty))
    }

    /// The value of a singular field, rejecting repeats and list syntax.
    pub(super) fn one(&mut self, f: &'a Field) -> Result<&'a Value> {
        if matches!(f.value, Value::List(_)) {
            return Err(self.err(
                f,
                format!(
                    "field \"{}\" of {} is not repeated, list syntax not allowed",
                    f.name, self.ty
                ),
            ));
        }
        if !self.seen.insert(&f.name) {
            return Err(self.err(
                f,
                format!("field \"{}\" of {} is set more than once", f.name, self.ty),
            ));
        }
        Ok(&f.value)
    }

    /// Like `one`, for a member of the message's single oneof.
    pub(super) fn oneof_member(&mut self, f: &'a Field, group: &str) -> Result<&'a Value> {
        match self.oneof {
            Some(prev) if prev != f.name => {
                return Err(self.err(
                    f,
                    format!(
                    "field \"{}\" of {} conflicts with \"{prev}\": both are in oneof \"{group}\"",
                    f.name, self.ty
                ),
                ))
            }
            _ => self.oneof = Some(&f.name),
        }
        self.one(f)
    }

    /// All values of a repeated field occurrence (one, or a list).
    pub(super) fn many(f: &'a Field) -> Vec<&'a Value> {
        match &f.value {
            Value::List(items) => items.iter().map(|(v, _, _)| v).collect(),
            v => vec![v],
        }
    }

    pub(super) fn expects(&self, f: &Field, what: &str, v: &Value) -> ConfigError {
        self.err(
            f,
            format!(
                "field \"{}\" of {} expects {what}, got {}",
                f.name,
                self.ty,
                v.describe()
            ),
        )
    }

    /// Scalars need `name: value`; a message given to a scalar field is
    /// reported as a type error instead.
    pub(super) fn check_colon(&self, f: &Field, v: &Value) -> Result<()> {
        if f.colon || matches!(v, Value::Message(_)) {
            Ok(())
        } else {
            Err(self.err(
                f,
                format!("expected \":\" after field \"{}\" of {}", f.name, self.ty),
            ))
        }
    }

    pub(super) fn to_text(&self, f: &Field, v: &Value) -> Result<String> {
        self.check_colon(f, v)?;
        match v {
            Value::Scalar(Scalar::Str(b)) => String::from_utf8(b.clone()).map_err(|_| {
                self.err(
                    f,
                    format!("field \"{}\" of {} is not valid UTF-8", f.name, self.ty),
                )
            }),
            _ => Err(self.expects(f, "a string", v)),
        }
    }

    pub(super) fn to_bool(&self, f: &Field, v: &Value) -> Result<bool> {
        self.check_colon(f, v)?;
        match v {
            Value::Scalar(Scalar::Ident(s) | Scalar::Number(s)) => match s.as_str() {
                "true" | "True" | "t" | "1" => Ok(true),
                "false" | "False" | "f" | "0" => Ok(false),
                _ => Err(self.expects(f, "a bool", v)),
            },
            _ => Err(self.expects(f, "a bool", v)),
        }
    }

    pub(super) fn to_int32(&self, f: &Field, v: &Value) -> Result<i32> {
        self.check_colon(f, v)?;
        match v {
            Value::Scalar(Scalar::Number(s)) => parse_int(s)
                .and_then(|n| i32::try_from(n).ok())
                .ok_or_else(|| self.expects(f, "an int32", v)),
            _ => Err(self.expects(f, "an int32", v)),
        }
    }

    pub(super) fn to_bugtracker_kind(&self, f: &Field, v: &Value) -> Result<BugTrackerKind> {
        self.check_colon(f, v)?;
        let kind = match v {
            Value::Scalar(Scalar::Ident(s)) => BugTrackerKind::from_name(s),
            Value::Scalar(Scalar::Number(s)) => parse_int(s).and_then(BugTrackerKind::from_number),
            _ => None,
        };
        kind.ok_or_else(|| self.expects(f, "a BugTrackerKind (gitlab, debian, github)", v))
    }

    pub(super) fn to_message<'v>(&self, f: &Field, v: &'v Value) -> Result<&'v [Field]> {
        match v {
            Value::Message(fields) => Ok(fields),
            _ => Err(self.expects(f, "a message", v)),
        }
    }

    // Convenience wrappers combining cardinality and type.

    pub(super) fn string(&mut self, f: &'a Field) -> Result<Option<String>> {
        let v = self.one(f)?;
        self.to_text(f, v).map(Some)
    }

    pub(super) fn bool(&mut self, f: &'a Field) -> Result<bool> {
        let v = self.one(f)?;
        self.to_bool(f, v)
    }

    pub(super) fn strings(&self, f: &'a Field, out: &mut Vec<String>) -> Result<()> {
        for v in Self::many(f) {
            out.push(self.to_text(f, v)?);
        }
        Ok(())
    }

    pub(super) fn message(&mut self, f: &'a Field) -> Result<&'a [Field]> {
        let v = self.one(f)?;
        self.to_message(f, v)
    }

    pub(super) fn messages<T>(
        &self,
        f: &'a Field,
        out: &mut Vec<T>,
        map: fn(&[Field]) -> Result<T>,
    ) -> Result<()> {
        for v in Self::many(f) {
            out.push(map(self.to_message(f, v)?)?);
        }
        Ok(())
    }
}

/// Integer literal as Python's text_format reads it: decimal, `0x` hex or
/// C octal (leading `0`), optionally negative.
pub(super) fn parse_int(s: &str) -> Option<i64> {
    let (neg, digits) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let n = if let Some(hex) = digits
        .strip_prefix("0x")
        .or_else(|| digits.strip_prefix("0X"))
    {
        i64::from_str_radix(hex, 16).ok()?
    } else if digits.len() > 1 && digits.starts_with('0') {
        i64::from_str_radix(&digits[1..], 8).ok()?
    } else if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        digits.parse().ok()?
    } else {
        return None;
    };
    Some(if neg { -n } else { n })
}

pub(super) fn map_config(fields: &[Field]) -> Result<Config> {
    let mut r = Reader::new("Config");
    let mut c = Config::default();
    for f in fields {
        match f.name.as_str() {
            "logs_location" => c.logs_location = r.string(f)?,
            "database_location" => c.database_location = r.string(f)?,
            "committer" => c.committer = r.string(f)?,
            "origin" => c.origin = r.string(f)?,
            "artifact_location" => c.artifact_location = r.string(f)?,
            "zipkin_address" => c.zipkin_address = r.string(f)?,
            "git_location" => c.git_location = r.string(f)?,
            "bzr_location" => c.bzr_location = r.string(f)?,
            "redis_location" => c.redis_location = r.string(f)?,
            "user_agent" => c.user_agent = r.string(f)?,
            "oauth2_provider" => c.oauth2_provider = Some(map_oauth2_provider(r.message(f)?)?),
            "bugtracker" => r.messages(f, &mut c.bugtracker, map_bugtracker)?,
            "apt_repository" => r.messages(f, &mut c.apt_repository, map_apt_repository)?,
            "distribution" => r.messages(f, &mut c.distribution, map_distribution)?,
            "campaign" => r.messages(f, &mut c.campaign, map_campaign)?,
            _ => return Err(r.unknown(f)),
        }
    }
    Ok(c)
}

pub(super) fn map_oauth2_provider(fields: &[Field]) -> Result<OAuth2Provider> {
    let mut r = Reader::new("OAuth2Provider");
    let mut o = OAuth2Provider::default();
    for f in fields {
        match f.name.as_str() {
            "client_id" => o.client_id = r.string(f)?,
            "client_secret" => o.client_secret = r.string(f)?,
            "base_url" => o.base_url = r.string(f)?,
            "qa_reviewer_group" => o.qa_reviewer_group = r.string(f)?,
            "admin_group" => o.admin_group = r.string(f)?,
            _ => return Err(r.unknown(f)),
        }
    }
    Ok(o)
}

pub(super) fn map_bugtracker(fields: &[Field]) -> Result<BugTracker> {
    let mut r = Reader::new("BugTracker");
    let mut b = BugTracker::default();
    for f in fields {
        match f.name.as_str() {
            "kind" => {
                let v = r.one(f)?;
                b.kind = Some(r.to_bugtracker_kind(f, v)?);
            }
            "url" => b.url = r.string(f)?,
            "name" => b.name = r.string(f)?,
            _ => return Err(r.unknown(f)),
        }
    }
    Ok(b)
}

pub(super) fn map_select(fields: &[Field]) -> Result<Select> {
    let mut r = Reader::new("Select");
    let mut s = Select::default();
    for f in fields {
        match f.name.as_str() {
            "campaign" => s.campaign = r.string(f)?,
            _ => return Err(r.unknown(f)),
        }
    }
    Ok(s)
}

pub(super) fn map_apt_repository(fields: &[Field]) -> Result<AptRepository> {
    let mut r = Reader::new("AptRepository");
    let mut a = AptRepository::default();
    for f in fields {
        match f.name.as_str() {
            "name" => a.name = r.string(f)?,
            "base" => a.base = r.string(f)?,
            "select" => r.messages(f, &mut a.select, map_select)?,
            "description" => a.description = r.string(f)?,
            _ => return Err(r.unknown(f)),
        }
    }
    Ok(a)
}

pub(super) fn map_distribution(fields: &[Field]) -> Result<Distribution> {
    let mut r = Reader::new("Distribution");
    let mut d = Distribution::default();
    for f in fields {
        match f.name.as_str() {
            "name" => d.name = r.string(f)?,
            "archive_mirror_uri" => d.archive_mirror_uri = r.string(f)?,
            "signed_by" => d.signed_by = r.string(f)?,
            "chroot" => d.chroot = r.string(f)?,
            "chroot_alias" => r.strings(f, &mut d.chroot_alias)?,
            "component" => r.strings(f, &mut d.component)?,
            "lintian_profile" => d.lintian_profile = r.string(f)?,
            "lintian_suppress_tag" => r.strings(f, &mut d.lintian_suppress_tag)?,
            "build_command" => d.build_command = r.string(f)?,
            "vendor" => d.vendor = r.string(f)?,
            "extra" => r.strings(f, &mut d.extra)?,
            _ => return Err(r.unknown(f)),
        }
    }
    Ok(d)
}

pub(super) fn map_merge_proposal(fields: &[Field]) -> Result<MergeProposalConfig> {
    let mut r = Reader::new("MergeProposalConfig");
    let mut m = MergeProposalConfig::default();
    for f in fields {
        match f.name.as_str() {
            "value_threshold" => {
                let v = r.one(f)?;
                m.value_threshold = Some(r.to_int32(f, v)?);
            }
            "commit_message" => m.commit_message = r.string(f)?,
            "title" => m.title = r.string(f)?,
            "label" => r.strings(f, &mut m.label)?,
            _ => return Err(r.unknown(f)),
        }
    }
    Ok(m)
}

pub(super) fn map_debian_build(fields: &[Field]) -> Result<DebianBuild> {
    let mut r = Reader::new("DebianBuild");
    let mut d = DebianBuild::default();
    for f in fields {
        match f.name.as_str() {
            "extra_build_distribution" => r.strings(f, &mut d.extra_build_distribution)?,
            "base_distribution" => d.base_distribution = r.string(f)?,
            "chroot" => d.chroot = r.string(f)?,
            "build_distribution" => d.build_distribution = r.string(f)?,
            "build_suffix" => d.build_suffix = r.string(f)?,
            "build_command" => d.build_command = r.string(f)?,
            _ => return Err(r.unknown(f)),
        }
    }
    Ok(d)
}

pub(super) fn map_generic_build(fields: &[Field]) -> Result<GenericBuild> {
    let mut r = Reader::new("GenericBuild");
    let mut g = GenericBuild::default();
    for f in fields {
        match f.name.as_str() {
            "chroot" => g.chroot = r.string(f)?,
            _ => return Err(r.unknown(f)),
        }
    }
    Ok(g)
}

pub(super) fn map_campaign(fields: &[Field]) -> Result<Campaign> {
    let mut r = Reader::new("Campaign");
    let mut c = Campaign::default();
    for f in fields {
        match f.name.as_str() {
            "name" => c.name = r.string(f)?,
            "branch_name" => c.branch_name = r.string(f)?,
            "merge_proposal" => c.merge_proposal = Some(map_merge_proposal(r.message(f)?)?),
            "force_build" => c.force_build = r.bool(f)?,
            "skip_setup_validation" => c.skip_setup_validation = r.bool(f)?,
            "default_empty" => c.default_empty = r.bool(f)?,
            "debian_build" => {
                let v = r.oneof_member(f, "build")?;
                let d = map_debian_build(r.to_message(f, v)?)?;
                c.build = Some(BuildConfig::Debian(d));
            }
            "generic_build" => {
                let v = r.oneof_member(f, "build")?;
                let g = map_generic_build(r.to_message(f, v)?)?;
                c.build = Some(BuildConfig::Generic(g));
            }
            "bugtracker" => r.messages(f, &mut c.bugtracker, map_bugtracker)?,
            "command" => c.command = r.string(f)?,
            _ => return Err(r.unknown(f)),
        }
    }
    Ok(c)
}
