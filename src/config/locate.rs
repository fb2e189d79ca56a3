//! Finding the config file, and writing the example one for `mcp-gateway init`.
//!
//! Lookup order: `--config`, then `$MCP_GATEWAY_CONFIG`, then the user's config file
//! (`$XDG_CONFIG_HOME/mcp-gateway/config.json`, else `$HOME/.config/mcp-gateway/config.json`), then
//! `./config/servers.json`. An explicit choice (the flag or the variable) that does not work is an
//! error, never a reason to quietly fall through to another file.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use super::{ConfigError, EXAMPLE_CONFIG};

const ENV_VAR: &str = "MCP_GATEWAY_CONFIG";

/// Which config file to use. `cli` is the value of `--config`; relative paths are taken from `cwd`.
pub fn locate(
    cli: Option<&Path>,
    env: &dyn Fn(&str) -> Option<String>,
    cwd: &Path,
) -> Result<PathBuf, ConfigError> {
    if let Some(path) = cli {
        return explicit(cwd.join(path), "given with --config");
    }
    if let Some(value) = env(ENV_VAR) {
        if value.is_empty() {
            return Err(ConfigError::whole_file(
                None,
                format!(
                    "{ENV_VAR} is set but empty: unset it, or set it to the path of a config file"
                ),
            ));
        }
        return explicit(cwd.join(value), "named by MCP_GATEWAY_CONFIG");
    }
    let user = default_user_path(env);
    let project = cwd.join("config").join("servers.json");
    // `exists` rather than `is_file`: a candidate that is there but unreadable should fail loudly in
    // `load`, not be skipped.
    if let Some(found) = user.iter().chain([&project]).find(|path| path.exists()) {
        log::debug!("using config file {}", found.display());
        return Ok(found.clone());
    }
    let mut looked = vec![
        format!("--config (not given)"),
        format!("${ENV_VAR} (not set)"),
    ];
    looked.extend(
        user.iter()
            .chain([&project])
            .map(|p| p.display().to_string()),
    );
    let create_at = user.as_ref().unwrap_or(&project);
    Err(ConfigError::whole_file(
        None,
        format!(
            "no config file found (looked at: {}); run `mcp-gateway init` to create {}, or pass --config PATH",
            looked.join(", "),
            create_at.display()
        ),
    ))
}

/// A path the user chose: it has to be a file.
fn explicit(path: PathBuf, how: &str) -> Result<PathBuf, ConfigError> {
    let problem = if path.is_file() {
        return Ok(path);
    } else if path.exists() {
        format!("not a file ({how})")
    } else {
        format!(
            "no such file ({how}); `mcp-gateway init {}` creates one",
            path.display()
        )
    };
    Err(ConfigError::whole_file(Some(path), problem))
}

/// The user's config file: `$XDG_CONFIG_HOME/mcp-gateway/config.json`, else
/// `$HOME/.config/mcp-gateway/config.json`; `None` when neither variable is usable.
pub fn default_user_path(env: &dyn Fn(&str) -> Option<String>) -> Option<PathBuf> {
    let set = |name: &str| env(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    // The XDG spec says to ignore a relative XDG_CONFIG_HOME.
    let config_home = set("XDG_CONFIG_HOME")
        .filter(|p| p.is_absolute())
        .or_else(|| set("HOME").map(|home| home.join(".config")))?;
    Some(config_home.join("mcp-gateway").join("config.json"))
}

/// Writes [`EXAMPLE_CONFIG`] to `path` for `mcp-gateway init`, creating parent directories. Refuses to
/// replace an existing file unless `force`. The file is written to a temporary name and renamed, so a
/// crash never leaves a half-written config behind.
pub fn write_example(path: &Path, force: bool) -> Result<(), String> {
    let shown = path.display();
    if path.is_dir() {
        return Err(format!(
            "{shown} is a directory; give the path of the file to create"
        ));
    }
    if path.exists() && !force {
        return Err(format!(
            "{shown} already exists; pass --force to overwrite it"
        ));
    }
    write_atomically(path, EXAMPLE_CONFIG.as_bytes())?;
    log::info!("wrote example config to {shown}");
    Ok(())
}

/// Writes `bytes` to a temporary file beside `path` (owner-only), then renames it over `path`:
/// a reader (the gateway watching its config) never sees half a file. Errors are for the user.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let shown = path.display();
    let Some(file_name) = path.file_name() else {
        return Err(format!("{shown} is not a file path"));
    };
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let mut temp_name = std::ffi::OsString::from(".");
    temp_name.push(file_name);
    temp_name.push(format!(".tmp{}", std::process::id()));
    let temp = dir.join(temp_name);
    let written = write_synced(&temp, bytes).and_then(|()| fs::rename(&temp, path));
    written.map_err(|e| {
        let _ = fs::remove_file(&temp);
        format!("cannot write {shown}: {e}")
    })
}

fn write_synced(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    // Owner-only: users go on to put tokens in `headers` and `env`.
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::super::ScratchDir;
    use super::*;

    /// An environment holding exactly `vars`.
    fn env_of<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    fn touch(path: &Path) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, "{}").unwrap();
    }

    #[test]
    fn user_path_prefers_xdg_then_home() {
        let xdg = [("XDG_CONFIG_HOME", "/x"), ("HOME", "/h")];
        assert_eq!(
            default_user_path(&env_of(&xdg)),
            Some(PathBuf::from("/x/mcp-gateway/config.json"))
        );
        let home = [("HOME", "/h"), ("XDG_CONFIG_HOME", "")];
        assert_eq!(
            default_user_path(&env_of(&home)),
            Some(PathBuf::from("/h/.config/mcp-gateway/config.json"))
        );
        let relative_xdg = [("XDG_CONFIG_HOME", "rel"), ("HOME", "/h")];
        assert_eq!(
            default_user_path(&env_of(&relative_xdg)),
            Some(PathBuf::from("/h/.config/mcp-gateway/config.json"))
        );
        assert_eq!(default_user_path(&env_of(&[("HOME", "")])), None);
    }

    #[test]
    fn lookup_order() {
        let dir = ScratchDir::new("locate-order");
        let root = dir.path();
        let home = root.join("home");
        let cwd = root.join("project");
        let cli = root.join("cli.json");
        let from_env = root.join("env.json");
        let user = home.join(".config/mcp-gateway/config.json");
        let project = cwd.join("config/servers.json");
        for path in [&cli, &from_env, &user, &project] {
            touch(path);
        }
        let home_str = home.to_str().unwrap();
        let env_str = from_env.to_str().unwrap();
        let with_var = [("HOME", home_str), (ENV_VAR, env_str)];
        let without_var = [("HOME", home_str)];

        assert_eq!(locate(Some(&cli), &env_of(&with_var), &cwd).unwrap(), cli);
        assert_eq!(locate(None, &env_of(&with_var), &cwd).unwrap(), from_env);
        assert_eq!(locate(None, &env_of(&without_var), &cwd).unwrap(), user);
        fs::remove_file(&user).unwrap();
        assert_eq!(locate(None, &env_of(&without_var), &cwd).unwrap(), project);
        // Relative paths are taken from `cwd`.
        assert_eq!(
            locate(Some(Path::new("config/servers.json")), &env_of(&[]), &cwd).unwrap(),
            project
        );
    }

    #[test]
    fn explicit_choices_never_fall_through() {
        let dir = ScratchDir::new("locate-explicit");
        let cwd = dir.path();
        touch(&cwd.join("config/servers.json"));
        let missing = cwd.join("nope.json");

        let error = locate(Some(&missing), &env_of(&[]), cwd).unwrap_err();
        assert_eq!(error.file.as_deref(), Some(missing.as_path()));
        assert!(
            error.problems[0]
                .message
                .starts_with("no such file (given with --config)"),
            "{error}"
        );

        let error = locate(Some(cwd), &env_of(&[]), cwd).unwrap_err();
        assert_eq!(
            error.problems[0].message,
            "not a file (given with --config)"
        );

        let env = [(ENV_VAR, missing.to_str().unwrap())];
        let error = locate(None, &env_of(&env), cwd).unwrap_err();
        assert!(
            error.problems[0]
                .message
                .starts_with("no such file (named by MCP_GATEWAY_CONFIG)"),
            "{error}"
        );

        let error = locate(None, &env_of(&[(ENV_VAR, "")]), cwd).unwrap_err();
        assert_eq!(error.file, None);
        assert_eq!(
            error.to_string(),
            "MCP_GATEWAY_CONFIG is set but empty: unset it, or set it to the path of a config file"
        );
    }

    #[test]
    fn nothing_found_lists_every_place_and_suggests_init() {
        let dir = ScratchDir::new("locate-none");
        let cwd = dir.path();
        let env = [("HOME", "/nonexistent-home")];
        let error = locate(None, &env_of(&env), cwd).unwrap_err();
        let expected = format!(
            "no config file found (looked at: --config (not given), $MCP_GATEWAY_CONFIG (not set), \
             /nonexistent-home/.config/mcp-gateway/config.json, {}); run `mcp-gateway init` to create \
             /nonexistent-home/.config/mcp-gateway/config.json, or pass --config PATH",
            cwd.join("config/servers.json").display()
        );
        assert_eq!(error.to_string(), expected);
    }

    #[test]
    fn write_example_creates_dirs_and_refuses_to_overwrite() {
        let dir = ScratchDir::new("init");
        let path = dir.path().join("a/b/config.json");
        write_example(&path, false).unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), EXAMPLE_CONFIG);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }

        fs::write(&path, "mine").unwrap();
        let error = write_example(&path, false).unwrap_err();
        assert_eq!(
            error,
            format!(
                "{} already exists; pass --force to overwrite it",
                path.display()
            )
        );
        assert_eq!(fs::read_to_string(&path).unwrap(), "mine");

        write_example(&path, true).unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), EXAMPLE_CONFIG);
        // No temporary file is left behind.
        assert_eq!(fs::read_dir(path.parent().unwrap()).unwrap().count(), 1);

        let error = write_example(dir.path(), true).unwrap_err();
        assert!(
            error.ends_with("is a directory; give the path of the file to create"),
            "{error}"
        );
    }
}
