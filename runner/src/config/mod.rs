//! Reader for `janitor.conf`: protobuf text format of upstream janitor's
//! `py/janitor/config.proto` (proto2).
//!
//! Parsing is two-stage: a schema-less text-format parser builds a tree of
//! fields with positions, then one mapping function per message checks
//! names, types and cardinality against config.proto and fills the typed
//! structs. The accepted syntax and the errors follow Python's
//! `google.protobuf.text_format.Parse`, which upstream uses: unknown field
//! names, a singular field given twice and two members of a oneof are all
//! errors.

mod lexer;
mod mapping;
mod tree;

use lexer::*;
use mapping::*;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use tree::*;

// ---------------------------------------------------------------------------
// Typed configuration

/// Top-level `janitor.Config` message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Config {
    pub logs_location: Option<String>,
    pub database_location: Option<String>,
    pub committer: Option<String>,
    pub origin: Option<String>,
    pub artifact_location: Option<String>,
    pub zipkin_address: Option<String>,
    pub git_location: Option<String>,
    pub bzr_location: Option<String>,
    pub redis_location: Option<String>,
    pub user_agent: Option<String>,
    pub oauth2_provider: Option<OAuth2Provider>,
    pub bugtracker: Vec<BugTracker>,
    pub apt_repository: Vec<AptRepository>,
    pub distribution: Vec<Distribution>,
    pub campaign: Vec<Campaign>,
}

impl Config {
    /// First campaign called `name`, like upstream `get_campaign_config`.
    /// An unset name compares equal to `""`, as in Python.
    pub fn campaign(&self, name: &str) -> Option<&Campaign> {
        self.campaign
            .iter()
            .find(|c| c.name.as_deref().unwrap_or("") == name)
    }

    /// First distribution called `name`, like upstream `get_distribution`.
    pub fn distribution(&self, name: &str) -> Option<&Distribution> {
        self.distribution
            .iter()
            .find(|d| d.name.as_deref().unwrap_or("") == name)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OAuth2Provider {
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    pub base_url: Option<String>,
    pub qa_reviewer_group: Option<String>,
    pub admin_group: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BugTrackerKind {
    Gitlab = 1,
    Debian = 2,
    Github = 3,
}

impl BugTrackerKind {
    fn from_name(name: &str) -> Option<Self> {
        match name {
            "gitlab" => Some(Self::Gitlab),
            "debian" => Some(Self::Debian),
            "github" => Some(Self::Github),
            _ => None,
        }
    }

    fn from_number(n: i64) -> Option<Self> {
        match n {
            1 => Some(Self::Gitlab),
            2 => Some(Self::Debian),
            3 => Some(Self::Github),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BugTracker {
    pub kind: Option<BugTrackerKind>,
    pub url: Option<String>,
    pub name: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Select {
    pub campaign: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AptRepository {
    pub name: Option<String>,
    pub base: Option<String>,
    pub select: Vec<Select>,
    pub description: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Distribution {
    pub name: Option<String>,
    pub archive_mirror_uri: Option<String>,
    pub signed_by: Option<String>,
    pub chroot: Option<String>,
    pub chroot_alias: Vec<String>,
    pub component: Vec<String>,
    pub lintian_profile: Option<String>,
    pub lintian_suppress_tag: Vec<String>,
    pub build_command: Option<String>,
    pub vendor: Option<String>,
    pub extra: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MergeProposalConfig {
    pub value_threshold: Option<i32>,
    pub commit_message: Option<String>,
    pub title: Option<String>,
    pub label: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DebianBuild {
    pub extra_build_distribution: Vec<String>,
    pub base_distribution: Option<String>,
    pub chroot: Option<String>,
    pub build_distribution: Option<String>,
    pub build_suffix: Option<String>,
    pub build_command: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GenericBuild {
    pub chroot: Option<String>,
}

/// The `build` oneof of `Campaign`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuildConfig {
    Debian(DebianBuild),
    Generic(GenericBuild),
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Campaign {
    pub name: Option<String>,
    pub branch_name: Option<String>,
    pub merge_proposal: Option<MergeProposalConfig>,
    pub force_build: bool,
    pub skip_setup_validation: bool,
    pub default_empty: bool,
    pub build: Option<BuildConfig>,
    pub bugtracker: Vec<BugTracker>,
    pub command: Option<String>,
}

impl Campaign {
    pub fn debian_build(&self) -> Option<&DebianBuild> {
        match &self.build {
            Some(BuildConfig::Debian(d)) => Some(d),
            _ => None,
        }
    }

    pub fn generic_build(&self) -> Option<&GenericBuild> {
        match &self.build {
            Some(BuildConfig::Generic(g)) => Some(g),
            _ => None,
        }
    }
}

// ---------------------------------------------------------------------------
// Errors

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{}: {source}", .path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Syntax or schema error. `line` and `column` are 1-based; `field` is
    /// the offending field name when there is one.
    #[error("{}{line}:{column}: {message}", file_prefix(.file))]
    Parse {
        file: Option<PathBuf>,
        line: usize,
        column: usize,
        field: Option<String>,
        message: String,
    },
}

fn file_prefix(file: &Option<PathBuf>) -> String {
    match file {
        Some(p) => format!("{}:", p.display()),
        None => String::new(),
    }
}

impl ConfigError {
    fn at(line: usize, column: usize, field: Option<&str>, message: String) -> Self {
        ConfigError::Parse {
            file: None,
            line,
            column,
            field: field.map(str::to_owned),
            message,
        }
    }

    /// Line of a parse error.
    pub fn line(&self) -> Option<usize> {
        match self {
            ConfigError::Parse { line, .. } => Some(*line),
            ConfigError::Io { .. } => None,
        }
    }

    /// Field named by a parse error, if any.
    pub fn field(&self) -> Option<&str> {
        match self {
            ConfigError::Parse { field, .. } => field.as_deref(),
            ConfigError::Io { .. } => None,
        }
    }

    fn with_file(self, path: &Path) -> Self {
        match self {
            ConfigError::Parse {
                line,
                column,
                field,
                message,
                ..
            } => ConfigError::Parse {
                file: Some(path.to_owned()),
                line,
                column,
                field,
                message,
            },
            other => other,
        }
    }
}

type Result<T> = std::result::Result<T, ConfigError>;

// ---------------------------------------------------------------------------
// Entry points

/// Parse janitor.conf text.
pub fn parse_config(text: &str) -> Result<Config> {
    let tokens = lex(text)?;
    let mut parser = Parser { tokens, pos: 0 };
    let fields = parser.body(None)?;
    map_config(&fields)
}

/// Read and parse a janitor.conf file; errors name the file.
pub fn read_config(path: &Path) -> Result<Config> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
        path: path.to_owned(),
        source,
    })?;
    parse_config(&text).map_err(|e| e.with_file(path))
}

// ---------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;

    fn golden_dir() -> PathBuf {
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
        let copied = manifest.join("../golden");
        let has_json = std::fs::read_dir(&copied)
            .map(|rd| {
                rd.flatten()
                    .any(|e| e.path().extension().is_some_and(|x| x == "json"))
            })
            .unwrap_or(false);
        if has_json {
            copied
        } else {
            manifest.join("../../shared/golden")
        }
    }

    fn golden_config(name: &str) -> String {
        let path = golden_dir().join(format!("{name}.json"));
        let text = std::fs::read_to_string(&path).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        v["config"].as_str().unwrap().to_owned()
    }

    fn parse_err(text: &str) -> ConfigError {
        parse_config(text).expect_err("expected a parse error")
    }

    #[test]
    fn every_golden_config_parses() {
        let mut count = 0;
        for entry in std::fs::read_dir(golden_dir()).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_none_or(|x| x != "json") {
                continue;
            }
            let v: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            let Some(text) = v["config"].as_str() else {
                continue;
            };
            let config = parse_config(text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert!(!config.campaign.is_empty(), "{}", path.display());
            count += 1;
        }
        assert!(count > 10, "only {count} golden configs found");
    }

    #[test]
    fn golden_debian_rich_config() {
        let c = parse_config(&golden_config("assign-debian-rich-config")).unwrap();
        assert_eq!(c.committer, None);
        let d = c.distribution("unstable").unwrap();
        assert_eq!(d.vendor.as_deref(), Some("Debian"));
        assert_eq!(
            d.archive_mirror_uri.as_deref(),
            Some("http://deb.example.org/debian")
        );
        assert_eq!(d.component, ["main", "contrib"]);
        assert_eq!(d.chroot.as_deref(), Some("unstable-amd64-sbuild"));
        assert_eq!(d.lintian_profile.as_deref(), Some("janitor"));
        assert_eq!(
            d.lintian_suppress_tag,
            ["bad-distribution-in-changes-file", "no-nmu-in-changelog"]
        );
        assert_eq!(d.build_command.as_deref(), Some("sbuild -Asv"));
        assert_eq!(
            d.signed_by.as_deref(),
            Some("/usr/share/keyrings/debian-archive-keyring.gpg")
        );
        let camp = c.campaign("fresh-releases").unwrap();
        assert_eq!(camp.command.as_deref(), Some("deb-new-upstream --refresh"));
        assert_eq!(camp.branch_name.as_deref(), Some("fresh-releases"));
        assert!(camp.default_empty);
        assert!(!camp.force_build);
        assert!(!camp.skip_setup_validation);
        let b = camp.debian_build().unwrap();
        assert_eq!(
            b,
            &DebianBuild {
                extra_build_distribution: vec!["fresh-snapshots".into()],
                base_distribution: Some("unstable".into()),
                chroot: None,
                build_distribution: Some("fresh-releases".into()),
                build_suffix: Some("jan+nur".into()),
                build_command: Some("sbuild -A --no-clean".into()),
            }
        );
        assert!(camp.generic_build().is_none());
        assert!(c.campaign("lintian-fixes").is_none());
    }

    #[test]
    fn golden_generic_build() {
        let c = parse_config(&golden_config("assign-generic-build")).unwrap();
        assert_eq!(
            c.committer.as_deref(),
            Some("Janitor Bot <janitor@example.com>")
        );
        assert_eq!(c.campaign.len(), 3);
        let g = c.campaign("generic-fix").unwrap();
        assert!(g.default_empty);
        assert_eq!(g.command.as_deref(), Some("fix-things --all"));
        assert_eq!(
            g.build,
            Some(BuildConfig::Generic(GenericBuild {
                chroot: Some("bookworm-amd64".into())
            }))
        );
        let s = c.campaign("scratch").unwrap();
        assert!(s.default_empty && s.force_build && s.skip_setup_validation);
        assert_eq!(s.command, None);
        assert_eq!(s.branch_name, None);
        let l = c.campaign("lintian-fixes").unwrap();
        assert!(!l.default_empty);
        assert_eq!(
            l.debian_build().unwrap().build_suffix.as_deref(),
            Some("jan+lint")
        );
        assert_eq!(c.database_location, None);
        assert_eq!(c.artifact_location, None);
    }

    #[test]
    fn golden_minimal_config() {
        let c = parse_config(&golden_config("assign-minimal-config-hg")).unwrap();
        let d = c.distribution("unstable").unwrap();
        assert_eq!(
            d,
            &Distribution {
                name: Some("unstable".into()),
                ..Default::default()
            }
        );
        let camp = c.campaign("mycampaign").unwrap();
        assert!(camp.default_empty);
        assert_eq!(
            camp.debian_build().unwrap().base_distribution.as_deref(),
            Some("unstable")
        );
    }

    #[test]
    fn all_top_level_fields_and_nested_messages() {
        let text = r#"
            logs_location: "/logs"
            database_location: "postgresql://db/janitor"
            committer: "Bot <bot@example.com>"
            origin: "janitor"
            artifact_location: "gs://artifacts"
            zipkin_address: "http://zipkin:9411"
            git_location: "https://git.example.com/"
            bzr_location: "https://bzr.example.com/"
            redis_location: "redis://localhost:6379"
            user_agent: "janitor/9.9"
            oauth2_provider { client_id: "id" client_secret: "s" base_url: "https://salsa/"
                              qa_reviewer_group: "qa" admin_group: "admins" }
            bugtracker { kind: github url: "https://github.com/x/y" name: "gh" }
            bugtracker { kind: 2 }
            apt_repository {
              name: "lintian-fixes"
              base: "unstable"
              select { campaign: "lintian-fixes" }
              select: [{campaign: "a"}, <campaign: "b">]
              description: "Lintian fixes"
            }
            distribution {
              name: "unstable"
              chroot_alias: "sid"
              extra: ["x", "y"]
            }
            campaign {
              name: "c"
              merge_proposal { value_threshold: -0x10 commit_message: "m" title: "t" label: "l1" label: "l2" }
              bugtracker { kind: gitlab }
            }
        "#;
        let c = parse_config(text).unwrap();
        assert_eq!(c.logs_location.as_deref(), Some("/logs"));
        assert_eq!(
            c.database_location.as_deref(),
            Some("postgresql://db/janitor")
        );
        assert_eq!(c.origin.as_deref(), Some("janitor"));
        assert_eq!(c.artifact_location.as_deref(), Some("gs://artifacts"));
        assert_eq!(c.zipkin_address.as_deref(), Some("http://zipkin:9411"));
        assert_eq!(c.redis_location.as_deref(), Some("redis://localhost:6379"));
        assert_eq!(c.user_agent.as_deref(), Some("janitor/9.9"));
        assert_eq!(c.git_location.as_deref(), Some("https://git.example.com/"));
        assert_eq!(c.bzr_location.as_deref(), Some("https://bzr.example.com/"));
        assert_eq!(
            c.oauth2_provider.as_ref().unwrap().admin_group.as_deref(),
            Some("admins")
        );
        assert_eq!(c.bugtracker[0].kind, Some(BugTrackerKind::Github));
        assert_eq!(c.bugtracker[1].kind, Some(BugTrackerKind::Debian));
        let apt = &c.apt_repository[0];
        let selected: Vec<_> = apt
            .select
            .iter()
            .map(|s| s.campaign.as_deref().unwrap())
            .collect();
        assert_eq!(selected, ["lintian-fixes", "a", "b"]);
        assert_eq!(c.distribution[0].chroot_alias, ["sid"]);
        assert_eq!(c.distribution[0].extra, ["x", "y"]);
        let mp = c.campaign[0].merge_proposal.as_ref().unwrap();
        assert_eq!(mp.value_threshold, Some(-16));
        assert_eq!(mp.label, ["l1", "l2"]);
        assert_eq!(
            c.campaign[0].bugtracker[0].kind,
            Some(BugTrackerKind::Gitlab)
        );
        assert_eq!(c.campaign[0].build, None);
    }

    #[test]
    fn syntax_variants() {
        let text = "# leading comment\n\
            committer: 'single \\'quoted\\'' # trailing comment\n\
            user_agent: \"a\" 'b' \"c\";\n\
            campaign: { name: \"x\", force_build: True; default_empty: t }\n\
            campaign < name: \"y\" skip_setup_validation: 1 force_build: False >\n\
            campaign { name: \"z\" default_empty: f force_build: 0 skip_setup_validation: true }\n\
            distribution { component: [\"main\", 'contrib'] component: \"non-free\" }\n\
            distribution { component: [] }\n";
        let c = parse_config(text).unwrap();
        assert_eq!(c.committer.as_deref(), Some("single 'quoted'"));
        assert_eq!(c.user_agent.as_deref(), Some("abc"));
        let names: Vec<_> = c.campaign.iter().map(|c| c.name.clone().unwrap()).collect();
        assert_eq!(names, ["x", "y", "z"]);
        assert!(c.campaign[0].force_build && c.campaign[0].default_empty);
        assert!(c.campaign[1].skip_setup_validation && !c.campaign[1].force_build);
        assert!(!c.campaign[2].default_empty && c.campaign[2].skip_setup_validation);
        assert_eq!(c.distribution[0].component, ["main", "contrib", "non-free"]);
        assert!(c.distribution[1].component.is_empty());
    }

    #[test]
    fn string_escapes() {
        let c = parse_config(
            r#"committer: "\a\b\f\n\r\t\v\\\'\"\?|\101\0|\x41\x4a|\u00e9\U0001F600|caf\303\251|é""#,
        )
        .unwrap();
        assert_eq!(
            c.committer.as_deref(),
            Some("\x07\x08\x0c\n\r\t\x0b\\'\"?|A\0|AJ|é😀|café|é")
        );
    }

    #[test]
    fn empty_string_is_set_and_unset_is_none() {
        let c = parse_config("committer: \"\"\ncampaign { name: \"\" }").unwrap();
        assert_eq!(c.committer.as_deref(), Some(""));
        assert_eq!(c.user_agent, None);
        // An unset name matches "" like Python's default string value.
        assert!(c.campaign("").is_some());
        assert!(parse_config("").unwrap() == Config::default());
    }

    #[test]
    fn first_matching_campaign_wins() {
        let c = parse_config(
            "campaign { name: \"a\" command: \"one\" }\ncampaign { name: \"a\" command: \"two\" }",
        )
        .unwrap();
        assert_eq!(c.campaign("a").unwrap().command.as_deref(), Some("one"));
    }

    #[test]
    fn unknown_field_names_line_and_type() {
        let e = parse_err("committer: \"x\"\n\ncampain {\n  name: \"y\"\n}\n");
        assert_eq!(e.line(), Some(3));
        assert_eq!(e.field(), Some("campain"));
        assert_eq!(e.to_string(), "3:1: unknown field \"campain\" in Config");

        let e = parse_err("campaign {\n  name: \"y\"\n  debian_build {\n    suffix: \"x\"\n  }\n}");
        assert_eq!(
            e.to_string(),
            "4:5: unknown field \"suffix\" in DebianBuild"
        );
        // Reported even without the ':' a scalar needs.
        let e = parse_err("bogus \"x\"");
        assert_eq!(e.to_string(), "1:1: unknown field \"bogus\" in Config");
    }

    #[test]
    fn wrong_value_types() {
        let e = parse_err("campaign {\n  name: \"x\"\n  force_build: yes\n}");
        assert_eq!(
            e.to_string(),
            "3:3: field \"force_build\" of Campaign expects a bool, got \"yes\""
        );
        assert_eq!(e.field(), Some("force_build"));
        let e = parse_err("campaign { force_build: \"true\" }");
        assert!(e
            .to_string()
            .contains("expects a bool, got string \"true\""));
        let e = parse_err("committer: unquoted");
        assert_eq!(
            e.to_string(),
            "1:1: field \"committer\" of Config expects a string, got \"unquoted\""
        );
        let e = parse_err("committer: 12");
        assert!(e.to_string().contains("expects a string, got \"12\""));
        let e = parse_err("committer { }");
        assert!(e.to_string().contains("expects a string, got a message"));
        let e = parse_err("campaign: \"x\"");
        assert!(e
            .to_string()
            .contains("field \"campaign\" of Config expects a message"));
        let e = parse_err("campaign { merge_proposal { value_threshold: 2147483648 } }");
        assert!(e.to_string().contains("expects an int32"));
        let e = parse_err("campaign { merge_proposal { value_threshold: 1.5 } }");
        assert!(e.to_string().contains("expects an int32"));
        let e = parse_err("bugtracker { kind: gitea }");
        assert!(e.to_string().contains("expects a BugTrackerKind"));
        let e = parse_err("bugtracker { kind: 7 }");
        assert!(e.to_string().contains("expects a BugTrackerKind"));
        let e = parse_err("committer: \"\\377\"");
        assert!(e.to_string().contains("not valid UTF-8"));
    }

    #[test]
    fn cardinality_errors() {
        let e = parse_err("committer: \"a\"\ncommitter: \"b\"");
        assert_eq!(
            e.to_string(),
            "2:1: field \"committer\" of Config is set more than once"
        );
        let e = parse_err("oauth2_provider {}\noauth2_provider {}");
        assert_eq!(e.line(), Some(2));
        let e = parse_err("campaign {\n debian_build {}\n generic_build {}\n}");
        assert_eq!(e.line(), Some(3));
        assert_eq!(e.field(), Some("generic_build"));
        assert!(e.to_string().contains("oneof \"build\""));
        let e = parse_err("campaign { debian_build {} debian_build {} }");
        assert!(e.to_string().contains("set more than once"));
        let e = parse_err("committer: [\"a\"]");
        assert!(e.to_string().contains("not repeated"));
    }

    #[test]
    fn syntax_errors() {
        let e = parse_err("campaign {\n  name: \"x\"\n");
        assert_eq!(e.to_string(), "3:1: expected \"}\", got end of file");
        let e = parse_err("campaign <\n name: \"x\" }");
        assert_eq!(e.line(), Some(2));
        let e = parse_err("committer \"x\"");
        assert_eq!(
            e.to_string(),
            "1:1: expected \":\" after field \"committer\" of Config"
        );
        let e = parse_err("\n  committer: \"abc\n\"");
        assert_eq!(e.to_string(), "2:14: unterminated string");
        let e = parse_err("committer: ");
        assert_eq!(
            e.to_string(),
            "1:12: expected a value for field \"committer\", got end of file"
        );
        let e = parse_err("committer: \"\\q\"");
        assert!(e.to_string().contains("invalid escape"));
        let e = parse_err("distribution { component: [\"a\" \"b\" 'c'; ] }");
        assert!(e.to_string().contains("expected \",\""));
        let e = parse_err("}");
        assert!(e.to_string().contains("expected a field name"));
        let e = parse_err("[ext.field]: 1");
        assert!(e.to_string().contains("not supported"));
        let e = parse_err("committer: \"a\";;");
        assert_eq!(e.to_string(), "1:16: expected a field name, got \";\"");
    }

    #[test]
    fn read_config_names_the_file() {
        let dir = std::env::temp_dir().join(format!("janitor-config-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("janitor.conf");
        std::fs::write(
            &path,
            "committer: \"x\"\ncampaign {\n  force_build: yes\n}\n",
        )
        .unwrap();
        let e = read_config(&path).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "{}:3:3: field \"force_build\" of Campaign expects a bool, got \"yes\"",
                path.display()
            )
        );
        std::fs::write(&path, "redis_location: \"redis://r\"\n").unwrap();
        let c = read_config(&path).unwrap();
        assert_eq!(c.redis_location.as_deref(), Some("redis://r"));
        let missing = dir.join("missing.conf");
        let e = read_config(&missing).unwrap_err();
        assert!(matches!(e, ConfigError::Io { .. }));
        assert!(e.to_string().starts_with(&missing.display().to_string()));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
