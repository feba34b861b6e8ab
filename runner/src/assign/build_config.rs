//! The build section of an assignment: builder, environment, config
//! (§4.5–§4.8).

use super::*;

/// Which builder a campaign uses (§4.2).
pub(super) enum Builder<'a> {
    Debian {
        distribution: &'a Distribution,
        build: &'a DebianBuild,
    },
    Generic {
        chroot: Option<&'a str>,
    },
}

impl Builder<'_> {
    pub(super) fn kind(&self) -> &'static str {
        match self {
            Builder::Debian { .. } => "debian",
            Builder::Generic { .. } => "generic",
        }
    }
}

pub(super) fn builder_for<'a>(app: &'a App, campaign: &'a Campaign) -> anyhow::Result<Builder<'a>> {
    if let Some(build) = campaign.debian_build() {
        let name = build.base_distribution.as_deref().unwrap_or_default();
        let distribution = app
            .config
            .distribution(name)
            .ok_or_else(|| anyhow::anyhow!("Unsupported distribution: {name}"))?;
        return Ok(Builder::Debian {
            distribution,
            build,
        });
    }
    if let Some(g) = campaign.generic_build() {
        return Ok(Builder::Generic {
            chroot: g.chroot.as_deref(),
        });
    }
    anyhow::bail!("no supported build type")
}

pub(super) fn non_empty(s: &Option<String>) -> Option<&str> {
    s.as_deref().filter(|s| !s.is_empty())
}

/// `dpkg-vendor --query vendor`, computed once per process.
pub(super) fn dpkg_vendor() -> anyhow::Result<String> {
    static VENDOR: OnceLock<Result<String, String>> = OnceLock::new();
    VENDOR
        .get_or_init(|| {
            let out = std::process::Command::new("dpkg-vendor")
                .args(["--query", "vendor"])
                .output()
                .map_err(|e| format!("dpkg-vendor: {e}"))?;
            if !out.status.success() {
                return Err(format!("dpkg-vendor failed: {}", out.status));
            }
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
        })
        .clone()
        .map_err(anyhow::Error::msg)
}

pub(super) fn str_value(s: impl Into<String>) -> Value {
    Value::String(s.into())
}

/// The APT source line of a distribution's mirror, when it has one.
pub(super) fn apt_repository(d: &Distribution) -> Option<String> {
    let mirror = non_empty(&d.archive_mirror_uri)?;
    if d.component.is_empty() {
        return None;
    }
    Some(format!(
        "{mirror} {} {}",
        d.name.as_deref().unwrap_or("None"),
        d.component.join(" ")
    ))
}

/// Build environment (§4.6).
pub(super) fn build_env(builder: &Builder<'_>) -> anyhow::Result<Map<String, Value>> {
    let mut env = Map::new();
    let Builder::Debian {
        distribution: d,
        build: b,
    } = builder
    else {
        return Ok(env);
    };
    if let Some(name) = non_empty(&d.name) {
        env.insert("DISTRIBUTION".into(), str_value(name));
    }
    let vendor = match non_empty(&d.vendor) {
        Some(v) => v.to_string(),
        None => dpkg_vendor()?,
    };
    env.insert("DEB_VENDOR".into(), str_value(vendor));
    if let Some(chroot) = non_empty(&b.chroot).or(non_empty(&d.chroot)) {
        env.insert("CHROOT".into(), str_value(chroot));
    }
    if let Some(repo) = apt_repository(d) {
        env.insert("APT_REPOSITORY".into(), str_value(repo));
    }
    Ok(env)
}

/// Build config (§4.6).
pub(super) async fn build_config(
    app: &App,
    conn: &mut sqlx::PgConnection,
    builder: &Builder<'_>,
    campaign: &Campaign,
    item: &db::queue::NextItem,
) -> anyhow::Result<Map<String, Value>> {
    let mut config = Map::new();
    let dep_server_url = app.settings.dep_server_url.clone().map(Value::String);
    match builder {
        Builder::Generic { chroot } => {
            if let Some(c) = chroot.filter(|c| !c.is_empty()) {
                config.insert("chroot".into(), str_value(c));
            }
        }
        Builder::Debian {
            distribution: d,
            build: b,
        } => {
            let mut lintian = Map::new();
            lintian.insert(
                "profile".into(),
                non_empty(&d.lintian_profile).map_or(Value::Null, str_value),
            );
            if !d.lintian_suppress_tag.is_empty() {
                lintian.insert(
                    "suppress-tags".into(),
                    Value::Array(d.lintian_suppress_tag.iter().map(str_value).collect()),
                );
            }
            config.insert("lintian".into(), Value::Object(lintian));
            let mut suites: Vec<String> = b.extra_build_distribution.clone();
            if let Some(cs) = item.change_set.as_deref().filter(|c| !c.is_empty()) {
                suites.push(format!("cs/{cs}"));
            }
            let extra: Vec<Value> = match non_empty(&app.settings.apt_archive_url) {
                Some(apt) => suites
                    .iter()
                    .map(|s| str_value(format!("deb [trusted=yes] {apt} {s} main")))
                    .collect(),
                None => Vec::new(),
            };
            config.insert("build-extra-repositories".into(), Value::Array(extra));
            let build_distribution = non_empty(&b.build_distribution)
                .or(non_empty(&campaign.name))
                .unwrap_or_default()
                .to_string();
            config.insert("build-distribution".into(), str_value(&build_distribution));
            config.insert(
                "build-suffix".into(),
                str_value(non_empty(&b.build_suffix).unwrap_or_default()),
            );
            if let Some(cmd) = non_empty(&b.build_command).or(non_empty(&d.build_command)) {
                config.insert("build-command".into(), str_value(cmd));
            }
            if let Some(v) =
                db::runs::last_build_version(conn, &item.codebase, &build_distribution).await?
            {
                config.insert("last-build-version".into(), str_value(v));
            }
            if let Some(chroot) = non_empty(&b.chroot).or(non_empty(&d.chroot)) {
                config.insert("chroot".into(), str_value(chroot));
            }
            if let Some(repo) = apt_repository(d) {
                config.insert("base-apt-repository".into(), str_value(repo));
                config.insert(
                    "base-apt-repository-signed-by".into(),
                    non_empty(&d.signed_by).map_or(Value::Null, str_value),
                );
            }
        }
    }
    config.insert(
        "dep_server_url".into(),
        dep_server_url.unwrap_or(Value::Null),
    );
    Ok(config)
}

/// `committer_env` (§15.2).
pub fn committer_env(committer: &str) -> Map<String, Value> {
    static RE: LazyLock<regex::Regex> = LazyLock::new(|| {
        regex::Regex::new(r"^(.*?)\s*<?([\[\]\w+.-]+@[\w+.-]+)>?").expect("valid regex")
    });
    let (name, email) = match RE.captures(committer) {
        Some(c) => (
            c.get(1).map_or("", |m| m.as_str()),
            c.get(2).map_or("", |m| m.as_str()),
        ),
        None => (committer, ""),
    };
    let mut env = Map::new();
    if !name.is_empty() {
        for k in ["DEBFULLNAME", "GIT_COMMITTER_NAME", "GIT_AUTHOR_NAME"] {
            env.insert(k.into(), str_value(name));
        }
    }
    if !email.is_empty() {
        for k in [
            "DEBEMAIL",
            "GIT_COMMITTER_EMAIL",
            "GIT_AUTHOR_EMAIL",
            "EMAIL",
        ] {
            env.insert(k.into(), str_value(email));
        }
    }
    env.insert("COMMITTER".into(), str_value(committer));
    env.insert("BRZ_EMAIL".into(), str_value(committer));
    env
}

/// Cache branch name (§4.8): `<vendor>/latest` for Debian campaigns.
pub(super) fn cache_branch_name(builder: &Builder<'_>) -> anyhow::Result<String> {
    Ok(match builder {
        Builder::Debian { distribution, .. } => {
            let vendor = match non_empty(&distribution.vendor) {
                Some(v) => v.to_string(),
                None => dpkg_vendor()?.to_lowercase(),
            };
            format!("{vendor}/latest")
        }
        Builder::Generic { .. } => "main".into(),
    })
}
