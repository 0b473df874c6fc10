//! Install images (issue 4): the package a stdio server runs from, parsed strictly once, and the
//! state of its installed image (S6, S8: every row belongs to the server's organization).
//!
//! A package is an exact npm version (`name@1.2.3`), an exact PyPI version (`name==1.2.3`) or an
//! operator-placed binary (an absolute path; that it lies under the directory the operator
//! configured is checked by the gateway, which knows that setting). Ranges, tags, URLs, git
//! references, extras and markers are refused: what a server runs is decided when it is
//! configured, not by whatever a registry serves later.
//!
//! The image is installed once per *generation*: creating a server with a package, changing its
//! package and asking for a reinstall each start a new generation, and reports of an older one
//! are ignored, so an install that was superseded cannot overwrite its successor's state.

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::{OrgId, OrgScope, ServerId, Store, StoreError, unix_now};

/// Longest package spec, in bytes.
pub const MAX_PACKAGE_SPEC_BYTES: usize = 512;
/// Longest error text kept for a failed install, in bytes.
pub const MAX_IMAGE_ERROR_BYTES: usize = 2048;

/// Which installer a package needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PackageKind {
    /// An npm package, `name@version` or `@scope/name@version`.
    Npm,
    /// A PyPI package, `name==version`.
    Pypi,
    /// A binary the operator placed on the gateway host, by absolute path.
    Binary,
}

impl PackageKind {
    /// The stable name, as stored and shown in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            PackageKind::Npm => "npm",
            PackageKind::Pypi => "pypi",
            PackageKind::Binary => "binary",
        }
    }

    fn from_stored(text: &str) -> Option<Self> {
        match text {
            "npm" => Some(PackageKind::Npm),
            "pypi" => Some(PackageKind::Pypi),
            "binary" => Some(PackageKind::Binary),
            _ => None,
        }
    }
}

/// A validated package spec; only [`Package::parse`] makes one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Package {
    kind: PackageKind,
    spec: String,
}

impl Package {
    /// Checks `spec` against the rules of `kind`; the error names the field `package`.
    pub fn parse(kind: PackageKind, spec: &str) -> Result<Package, StoreError> {
        if spec.len() > MAX_PACKAGE_SPEC_BYTES {
            return Err(invalid(format!(
                "is longer than {MAX_PACKAGE_SPEC_BYTES} bytes"
            )));
        }
        match kind {
            PackageKind::Npm => check_npm(spec)?,
            PackageKind::Pypi => check_pypi(spec)?,
            PackageKind::Binary => check_binary(spec)?,
        }
        Ok(Package {
            kind,
            spec: spec.to_owned(),
        })
    }

    /// Which installer it needs.
    pub fn kind(&self) -> PackageKind {
        self.kind
    }

    /// The spec as given: `name@version`, `name==version` or an absolute path.
    pub fn spec(&self) -> &str {
        &self.spec
    }
}

fn invalid(reason: impl Into<String>) -> StoreError {
    StoreError::Invalid {
        field: "package",
        reason: reason.into(),
    }
}

/// npm: `[@scope/]name@MAJOR.MINOR.PATCH[-pre][+build]`, names as the registry accepts new ones
/// (lower case, URL-safe, at most 214 bytes, not starting with `.` or `_`).
fn check_npm(spec: &str) -> Result<(), StoreError> {
    let usage = "an npm package is `name@1.2.3` or `@scope/name@1.2.3`, with an exact version \
                 (no range, tag or URL)";
    let (name, version) = match spec.strip_prefix('@') {
        Some(rest) => rest
            .split_once('@')
            .map(|(name, version)| (&spec[..name.len() + 1], version)),
        None => spec.split_once('@'),
    }
    .ok_or_else(|| invalid(usage))?;
    let name_part = |part: &str| {
        !part.is_empty()
            && !part.starts_with(['.', '_'])
            && part
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-._~".contains(&b))
    };
    let name_ok = name.len() <= 214
        && match name.strip_prefix('@') {
            Some(scoped) => scoped
                .split_once('/')
                .is_some_and(|(scope, name)| name_part(scope) && name_part(name)),
            None => name_part(name) && !matches!(name, "node_modules" | "favicon.ico"),
        };
    if !name_ok {
        return Err(invalid(format!(
            "{usage}; {name:?} is not a valid npm name"
        )));
    }
    if !is_semver(version) {
        return Err(invalid(format!(
            "{usage}; {version:?} is not an exact version"
        )));
    }
    Ok(())
}

/// Semantic Versioning 2.0.0, exactly: no `v`, no range, no leading zeros.
fn is_semver(version: &str) -> bool {
    let (rest, build) = match version.split_once('+') {
        Some((rest, build)) => (rest, Some(build)),
        None => (version, None),
    };
    let (core, pre) = match rest.split_once('-') {
        Some((core, pre)) => (core, Some(pre)),
        None => (rest, None),
    };
    let number = |part: &str| {
        !part.is_empty()
            && part.bytes().all(|b| b.is_ascii_digit())
            && (part == "0" || !part.starts_with('0'))
    };
    let identifier = |part: &str| {
        !part.is_empty() && part.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    let core: Vec<&str> = core.split('.').collect();
    core.len() == 3
        && core.iter().all(|part| number(part))
        && pre.is_none_or(|pre| {
            pre.split('.').all(|part| {
                identifier(part) && (!part.bytes().all(|b| b.is_ascii_digit()) || number(part))
            })
        })
        && build.is_none_or(|build| build.split('.').all(identifier))
}

/// PyPI: `name==version`, a PEP 508 name and a PEP 440 public version; no extras, markers,
/// other operators or URLs.
fn check_pypi(spec: &str) -> Result<(), StoreError> {
    let usage = "a PyPI package is `name==1.2.3`, with an exact version (no other operator, \
                 extras, markers or URL)";
    let (name, version) = spec.split_once("==").ok_or_else(|| invalid(usage))?;
    let name_ok = !name.is_empty()
        && name.len() <= 128
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b))
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric())
        && name
            .bytes()
            .last()
            .is_some_and(|b| b.is_ascii_alphanumeric());
    if !name_ok {
        return Err(invalid(format!(
            "{usage}; {name:?} is not a valid PyPI name"
        )));
    }
    if !is_pep440(version) {
        return Err(invalid(format!(
            "{usage}; {version:?} is not an exact version"
        )));
    }
    Ok(())
}

/// A PEP 440 public version in its usual spelling: `[N!]N(.N)*[{a|b|rc}N][.postN][.devN]`.
fn is_pep440(version: &str) -> bool {
    fn digits(text: &str) -> usize {
        text.bytes().take_while(u8::is_ascii_digit).count()
    }
    let mut rest = version;
    if let Some((epoch, after)) = rest.split_once('!') {
        if epoch.is_empty() || digits(epoch) != epoch.len() {
            return false;
        }
        rest = after;
    }
    // The release: numbers joined by dots.
    loop {
        let n = digits(rest);
        if n == 0 {
            return false;
        }
        rest = &rest[n..];
        match rest.strip_prefix('.') {
            Some(after) if after.bytes().next().is_some_and(|b| b.is_ascii_digit()) => {
                rest = after;
            }
            _ => break,
        }
    }
    for prefix in ["a", "b", "rc"] {
        if let Some(after) = rest.strip_prefix(prefix) {
            let n = digits(after);
            if n == 0 {
                return false;
            }
            rest = &after[n..];
            break;
        }
    }
    for prefix in [".post", ".dev"] {
        if let Some(after) = rest.strip_prefix(prefix) {
            let n = digits(after);
            if n == 0 {
                return false;
            }
            rest = &after[n..];
        }
    }
    rest.is_empty()
}

/// A binary: an absolute, normalized path of printable characters (no `.` or `..` component,
/// no empty component, no trailing slash).
fn check_binary(spec: &str) -> Result<(), StoreError> {
    let usage = "a binary is the absolute path of a file the operator placed under the gateway's \
                 binaries directory";
    let Some(rest) = spec.strip_prefix('/') else {
        return Err(invalid(usage));
    };
    let normalized = !rest.is_empty()
        && rest
            .split('/')
            .all(|part| !part.is_empty() && part != "." && part != "..")
        && !spec.chars().any(char::is_control);
    if !normalized {
        return Err(invalid(format!(
            "{usage}; it must be normalized (no `.`, `..`, empty component or control character)"
        )));
    }
    Ok(())
}

/// Where an image stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageState {
    /// Waiting for an installer.
    Pending,
    /// An install runs.
    Installing,
    /// Sessions can run the server.
    Ready,
    /// The install failed; `error` says why.
    Failed,
}

impl ImageState {
    /// The stable name, as stored and shown in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            ImageState::Pending => "pending",
            ImageState::Installing => "installing",
            ImageState::Ready => "ready",
            ImageState::Failed => "failed",
        }
    }

    fn from_stored(text: &str) -> Option<Self> {
        match text {
            "pending" => Some(ImageState::Pending),
            "installing" => Some(ImageState::Installing),
            "ready" => Some(ImageState::Ready),
            "failed" => Some(ImageState::Failed),
            _ => None,
        }
    }
}

/// What an install is doing, coarsely; the installer reads it off the package manager's output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImagePhase {
    /// Not started.
    Queued,
    /// Making the image directory and the install sandbox.
    Preparing,
    /// Fetching package metadata and deciding versions.
    Resolving,
    /// Fetching the packages themselves.
    Downloading,
    /// Unpacking and linking them into the image.
    Linking,
    /// Making the image read-only and owned by root.
    Sealing,
    /// Finished.
    Done,
}

impl ImagePhase {
    /// The stable name, as stored and shown in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            ImagePhase::Queued => "queued",
            ImagePhase::Preparing => "preparing",
            ImagePhase::Resolving => "resolving",
            ImagePhase::Downloading => "downloading",
            ImagePhase::Linking => "linking",
            ImagePhase::Sealing => "sealing",
            ImagePhase::Done => "done",
        }
    }

    fn from_stored(text: &str) -> Option<Self> {
        [
            ImagePhase::Queued,
            ImagePhase::Preparing,
            ImagePhase::Resolving,
            ImagePhase::Downloading,
            ImagePhase::Linking,
            ImagePhase::Sealing,
            ImagePhase::Done,
        ]
        .into_iter()
        .find(|phase| phase.as_str() == text)
    }
}

/// A server's install image as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageStatus {
    /// Which install this is; goes up with every install requested for the server.
    pub generation: i64,
    /// Where it stands.
    pub state: ImageState,
    /// What the install is (or was last) doing.
    pub phase: ImagePhase,
    /// Percent done, 0 to 100.
    pub progress: u8,
    /// Why it failed, in the installer's words (no secret: installs get none).
    pub error: Option<String>,
    /// Bytes in the image's files, once ready.
    pub size_bytes: Option<i64>,
    /// When it became ready (Unix seconds).
    pub installed_at: Option<i64>,
    /// When its state last changed (Unix seconds).
    pub updated_at: i64,
}

/// What an installer reports about one generation of an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageReport {
    /// It runs: the phase and percent now.
    Progress {
        /// The phase.
        phase: ImagePhase,
        /// Percent done, at most 99 (100 is [`ImageReport::Ready`]).
        progress: u8,
    },
    /// It is installed and sealed.
    Ready {
        /// Bytes in its files.
        size_bytes: i64,
    },
    /// It failed, in `phase`, for `error` (cut to [`MAX_IMAGE_ERROR_BYTES`]).
    Failed {
        /// The phase it failed in.
        phase: ImagePhase,
        /// Why.
        error: String,
    },
}

/// One image of the deployment, for the gateway's own upkeep at start (see
/// [`Store::images_for_upkeep`]).
#[derive(Debug, Clone)]
pub struct ImageUpkeep {
    /// The organization the server belongs to.
    pub scope: OrgScope,
    /// The server.
    pub server: ServerId,
    /// The package it installs.
    pub package: Package,
    /// The generation and state.
    pub status: ImageStatus,
}

/// Reads the package columns of a server row.
pub(crate) fn package_from_row(row: &AnyRow) -> Result<Option<Package>, StoreError> {
    let kind: Option<String> = row.try_get("package_kind")?;
    let spec: Option<String> = row.try_get("package_spec")?;
    match (kind, spec) {
        (None, None) => Ok(None),
        (Some(kind), Some(spec)) => {
            let kind = PackageKind::from_stored(&kind).ok_or_else(|| {
                StoreError::corrupt("servers", format!("unknown package kind {kind:?}"))
            })?;
            Ok(Some(Package { kind, spec }))
        }
        _ => Err(StoreError::corrupt(
            "servers",
            "a package kind without a spec, or the reverse",
        )),
    }
}

/// Reads the image columns of a server row (joined from `server_images`).
pub(crate) fn image_from_row(row: &AnyRow) -> Result<Option<ImageStatus>, StoreError> {
    let corrupt = |reason: String| StoreError::corrupt("server_images", reason);
    let Some(generation) = row.try_get::<Option<i64>, _>("image_generation")? else {
        return Ok(None);
    };
    let state: String = row.try_get("image_state")?;
    let phase: String = row.try_get("image_phase")?;
    let progress: i64 = row.try_get("image_progress")?;
    Ok(Some(ImageStatus {
        generation,
        state: ImageState::from_stored(&state)
            .ok_or_else(|| corrupt(format!("unknown state {state:?}")))?,
        phase: ImagePhase::from_stored(&phase)
            .ok_or_else(|| corrupt(format!("unknown phase {phase:?}")))?,
        progress: u8::try_from(progress)
            .ok()
            .filter(|p| *p <= 100)
            .ok_or_else(|| corrupt(format!("progress {progress}")))?,
        error: row.try_get("image_error")?,
        size_bytes: row.try_get("image_size_bytes")?,
        installed_at: row.try_get("image_installed_at")?,
        updated_at: row.try_get("image_updated_at")?,
    }))
}

/// Starts a new generation of `server`'s image: pending, nothing installed yet.
pub(crate) async fn start_generation(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    scope: &OrgScope,
    server: &ServerId,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE servers SET image_generation = image_generation + 1 WHERE org_id = $1 AND id = $2",
    )
    .bind(scope.org_id().as_str())
    .bind(server.as_str())
    .execute(&mut **tx)
    .await?;
    sqlx::query("DELETE FROM server_images WHERE org_id = $1 AND server_id = $2")
        .bind(scope.org_id().as_str())
        .bind(server.as_str())
        .execute(&mut **tx)
        .await?;
    sqlx::query(
        "INSERT INTO server_images (server_id, org_id, generation, state, phase, progress, updated_at) \
         SELECT id, org_id, image_generation, 'pending', 'queued', 0, $3 FROM servers \
         WHERE org_id = $1 AND id = $2",
    )
    .bind(scope.org_id().as_str())
    .bind(server.as_str())
    .bind(unix_now())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Forgets `server`'s image (its package was removed).
pub(crate) async fn drop_image(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    scope: &OrgScope,
    server: &ServerId,
) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM server_images WHERE org_id = $1 AND server_id = $2")
        .bind(scope.org_id().as_str())
        .bind(server.as_str())
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Cuts `text` to at most `max` bytes on a character boundary.
fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

impl Store {
    /// Starts a new install of a server's image (owners and admins): the running one, if any,
    /// is superseded. A server without a package has no image to install.
    pub async fn reinstall_image(
        &self,
        scope: &OrgScope,
        _permit: &auth::Permit<auth::ManageServers>,
        id: &ServerId,
    ) -> Result<crate::Server, StoreError> {
        let mut tx = self.pool.begin().await?;
        // The write lock first: a read followed by a write in a deferred SQLite transaction
        // fails with SQLITE_BUSY when the installer reports progress in between.
        crate::members::lock_organization(&mut tx, scope).await?;
        let server = crate::servers::fetch_server(&mut *tx, scope, id).await?;
        if server.package.is_none() {
            return Err(StoreError::Invalid {
                field: "package",
                reason: "this server has no package, so there is nothing to install".into(),
            });
        }
        start_generation(&mut tx, scope, id).await?;
        let server = crate::servers::fetch_server(&mut *tx, scope, id).await?;
        tx.commit().await?;
        Ok(server)
    }

    /// Records what the installer of `generation` reports. Returns `false`, changing nothing,
    /// when that generation is no longer current (superseded, or the server is gone) or has
    /// already finished.
    pub async fn report_image(
        &self,
        scope: &OrgScope,
        id: &ServerId,
        generation: i64,
        report: ImageReport,
    ) -> Result<bool, StoreError> {
        let now = unix_now();
        let (state, phase, progress, error, size, installed_at) = match &report {
            ImageReport::Progress { phase, progress } => (
                ImageState::Installing,
                *phase,
                i64::from((*progress).min(99)),
                None,
                None,
                None,
            ),
            ImageReport::Ready { size_bytes } => (
                ImageState::Ready,
                ImagePhase::Done,
                100,
                None,
                Some(*size_bytes),
                Some(now),
            ),
            ImageReport::Failed { phase, error } => (
                ImageState::Failed,
                *phase,
                0,
                Some(truncate(error, MAX_IMAGE_ERROR_BYTES).to_owned()),
                None,
                None,
            ),
        };
        let progress = match &report {
            ImageReport::Failed { .. } => None,
            _ => Some(progress),
        };
        let updated = sqlx::query(
            "UPDATE server_images SET state = $1, phase = $2, progress = COALESCE($3, progress), \
             error = $4, size_bytes = $5, installed_at = $6, updated_at = $7 \
             WHERE org_id = $8 AND server_id = $9 AND generation = $10 \
             AND state IN ('pending', 'installing')",
        )
        .bind(state.as_str())
        .bind(phase.as_str())
        .bind(progress)
        .bind(error)
        .bind(size)
        .bind(installed_at)
        .bind(now)
        .bind(scope.org_id().as_str())
        .bind(id.as_str())
        .bind(generation)
        .execute(&self.pool)
        .await?;
        Ok(updated.rows_affected() == 1)
    }

    /// Every image of the deployment, across organizations, for the gateway's upkeep at start:
    /// resuming installs a crash interrupted and removing directories no image owns. It is a
    /// maintenance path like [`Store::operator_scope`]; request handlers never call it.
    pub async fn images_for_upkeep(&self) -> Result<Vec<ImageUpkeep>, StoreError> {
        let rows = sqlx::query(
            "SELECT s.org_id, s.id, s.package_kind, s.package_spec, i.generation AS image_generation, \
             i.state AS image_state, i.phase AS image_phase, i.progress AS image_progress, \
             i.error AS image_error, i.size_bytes AS image_size_bytes, \
             i.installed_at AS image_installed_at, i.updated_at AS image_updated_at \
             FROM server_images i JOIN servers s ON s.id = i.server_id AND s.org_id = i.org_id \
             ORDER BY s.id",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut images = Vec::with_capacity(rows.len());
        for row in &rows {
            let (Some(package), Some(status)) = (package_from_row(row)?, image_from_row(row)?)
            else {
                return Err(StoreError::corrupt(
                    "server_images",
                    "an image of a server without a package",
                ));
            };
            images.push(ImageUpkeep {
                scope: OrgScope {
                    org_id: OrgId::from_untrusted(&row.try_get::<String, _>("org_id")?),
                },
                server: ServerId::from_untrusted(&row.try_get::<String, _>("id")?),
                package,
                status,
            });
        }
        Ok(images)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(kind: PackageKind, spec: &str) -> Result<(), String> {
        Package::parse(kind, spec)
            .map(|_| ())
            .map_err(|error| match error {
                StoreError::Invalid { field, reason } => format!("{field}: {reason}"),
                other => format!("{other:?}"),
            })
    }

    #[test]
    fn npm_specs_name_an_exact_version() {
        for good in [
            "@modelcontextprotocol/server-everything@2026.8.31",
            "left-pad@1.3.0",
            "a@0.0.0",
            "x.y_z~1@10.20.30-rc.1+build.5",
            "@s/n@1.0.0-alpha-1.0",
        ] {
            assert_eq!(check(PackageKind::Npm, good), Ok(()), "{good}");
        }
        for bad in [
            "left-pad",
            "left-pad@",
            "left-pad@latest",
            "left-pad@^1.3.0",
            "left-pad@~1.3.0",
            "left-pad@1.3",
            "left-pad@v1.3.0",
            "left-pad@01.3.0",
            "left-pad@1.3.0-01",
            "left-pad@1.3.0 || 2.0.0",
            "left-pad@>=1.0.0",
            "Left-Pad@1.0.0",
            ".hidden@1.0.0",
            "_under@1.0.0",
            "@scope@1.0.0",
            "@/name@1.0.0",
            "@scope/@1.0.0",
            "node_modules@1.0.0",
            "git+https://github.com/x/y.git",
            "https://example.com/x.tgz",
            "file:../x",
            "x@1.0.0\n",
            "x@npm:y@1.0.0",
        ] {
            let error = check(PackageKind::Npm, bad).unwrap_err();
            assert!(
                error.starts_with("package: an npm package is"),
                "{bad}: {error}"
            );
        }
    }

    #[test]
    fn pypi_specs_name_an_exact_version() {
        for good in [
            "mcp-server-time==2026.10.19",
            "mcp==1.9.4",
            "Django==4.2",
            "a==1",
            "x_y.z==1!2.0.0rc1.post2.dev3",
            "pkg==1.0a1",
        ] {
            assert_eq!(check(PackageKind::Pypi, good), Ok(()), "{good}");
        }
        for bad in [
            "mcp",
            "mcp>=1.0",
            "mcp~=1.0",
            "mcp===1.0",
            "mcp==",
            "mcp==1.*",
            "mcp==1.0+local",
            "mcp[cli]==1.0",
            "mcp==1.0; python_version>'3'",
            "mcp == 1.0",
            "-mcp==1.0",
            "mcp @ https://example.com/mcp.whl",
            "mcp==1..0",
            "mcp==1.0.",
            "mcp==rc1",
        ] {
            let error = check(PackageKind::Pypi, bad).unwrap_err();
            assert!(
                error.starts_with("package: a PyPI package is"),
                "{bad}: {error}"
            );
        }
    }

    #[test]
    fn binaries_are_normalized_absolute_paths() {
        assert_eq!(check(PackageKind::Binary, "/srv/mcp/bin/server"), Ok(()));
        for bad in [
            "server",
            "./server",
            "/",
            "/srv/../etc/shadow",
            "/srv/./x",
            "/srv//x",
            "/srv/x/",
            "/srv/x\n",
        ] {
            let error = check(PackageKind::Binary, bad).unwrap_err();
            assert!(error.starts_with("package: a binary is"), "{bad}: {error}");
        }
        let long = format!("/{}", "a".repeat(600));
        assert!(
            check(PackageKind::Binary, &long)
                .unwrap_err()
                .contains("longer than 512")
        );
    }

    #[test]
    fn stored_names_round_trip() {
        for phase in [
            ImagePhase::Queued,
            ImagePhase::Preparing,
            ImagePhase::Resolving,
            ImagePhase::Downloading,
            ImagePhase::Linking,
            ImagePhase::Sealing,
            ImagePhase::Done,
        ] {
            assert_eq!(ImagePhase::from_stored(phase.as_str()), Some(phase));
        }
        for state in [
            ImageState::Pending,
            ImageState::Installing,
            ImageState::Ready,
            ImageState::Failed,
        ] {
            assert_eq!(ImageState::from_stored(state.as_str()), Some(state));
        }
        assert_eq!(truncate("héllo", 2), "h");
    }
}
