//! `gateway.authTokenFile`: the bearer token read from a file, so it stays out of the config file
//! and out of the process environment.
//!
//! The file's content, trimmed of surrounding whitespace (a trailing newline is the usual case), is
//! the token. A file that others may read, or anyone but its owner write, is refused
//! (`check_private`): a token anyone on the machine can read protects nothing. Read by its group is
//! allowed: that is how Kubernetes hands a Secret to a non-root container (`fsGroup`, mode 0440).
//! An empty file is refused too (it would silently mean "no token").

use std::path::Path;

/// The token in `path`, or why it cannot be used (a sentence for the user, naming the fix).
pub(super) fn read_token_file(path: &Path) -> Result<String, String> {
    let shown = path.display();
    let metadata = std::fs::metadata(path).map_err(|e| format!("cannot read {shown}: {e}"))?;
    if !metadata.is_file() {
        return Err(format!("{shown} is not a regular file"));
    }
    check_private(path, &metadata)?;
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {shown}: {e}"))?;
    let token = text.trim();
    if token.is_empty() {
        return Err(format!("{shown} is empty; write the token in it"));
    }
    Ok(token.to_owned())
}

/// Refuses a secret file (a token, a key) that others may read or anyone but its owner may write.
pub fn check_private(path: &Path, metadata: &std::fs::Metadata) -> Result<(), String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = metadata.permissions().mode() & 0o777;
        if mode & 0o027 != 0 {
            let shown = path.display();
            return Err(format!(
                "{shown} may be read by others or changed by its group (mode {mode:04o}); make it private with `chmod 600 {shown}`"
            ));
        }
    }
    #[cfg(not(unix))]
    let _ = (path, metadata);
    Ok(())
}

#[cfg(all(test, unix))]
mod tests {
    use super::super::ScratchDir;
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn write(dir: &ScratchDir, name: &str, text: &str, mode: u32) -> std::path::PathBuf {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    #[test]
    fn a_private_file_gives_its_trimmed_content() {
        let dir = ScratchDir::new("secret-ok");
        let path = write(&dir, "token", "  s3cret\n", 0o600);
        assert_eq!(read_token_file(&path).unwrap(), "s3cret");
        let path = write(&dir, "owner-only", "t", 0o400);
        assert_eq!(read_token_file(&path).unwrap(), "t");
        // A Kubernetes Secret for a non-root container: its group may read it.
        let path = write(&dir, "group-read", "k", 0o440);
        assert_eq!(read_token_file(&path).unwrap(), "k");
    }

    #[test]
    fn a_file_others_may_read_is_refused_with_the_fix() {
        let dir = ScratchDir::new("secret-mode");
        for mode in [0o644, 0o604, 0o660, 0o602] {
            let path = write(&dir, "token", "s3cret\n", mode);
            let error = read_token_file(&path).unwrap_err();
            assert!(
                error.contains(&format!("mode {mode:04o}")) && error.contains("chmod 600"),
                "{error}"
            );
        }
    }

    #[test]
    fn missing_empty_and_directory_are_refused() {
        let dir = ScratchDir::new("secret-bad");
        let missing = dir.path().join("nope");
        assert!(read_token_file(&missing)
            .unwrap_err()
            .starts_with(&format!("cannot read {}", missing.display())));
        let empty = write(&dir, "empty", " \n", 0o600);
        assert!(read_token_file(&empty).unwrap_err().contains("is empty"));
        assert!(read_token_file(dir.path())
            .unwrap_err()
            .contains("not a regular file"));
    }
}
