//! Resolving a model argument: a directory, or an `org/name` id present in the local Hugging Face cache.

use anyhow::{Result, bail};
use std::path::{Path, PathBuf};

/// The hub cache folder, as huggingface_hub finds it: `HF_HUB_CACHE`, else `HF_HOME/hub`, else
/// `XDG_CACHE_HOME/huggingface/hub`, else `~/.cache/huggingface/hub`.
pub fn hub_cache_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("HF_HUB_CACHE") {
        return Some(PathBuf::from(dir));
    }
    if let Some(home) = std::env::var_os("HF_HOME") {
        return Some(PathBuf::from(home).join("hub"));
    }
    if let Some(xdg) = std::env::var_os("XDG_CACHE_HOME") {
        return Some(PathBuf::from(xdg).join("huggingface").join("hub"));
    }
    std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache").join("huggingface").join("hub"))
}

/// A directory when `model` names one; otherwise the snapshot of `org/name` in the local HF cache (the revision
/// `refs/main` points at, else the most recently modified snapshot).
pub fn resolve_model(model: &str) -> Result<PathBuf> {
    resolve_model_in(model, hub_cache_dir())
}

fn resolve_model_in(model: &str, cache: Option<PathBuf>) -> Result<PathBuf> {
    let path = Path::new(model);
    if path.is_dir() {
        return Ok(path.to_path_buf());
    }
    if path.exists() {
        bail!(
            "model {model} is a file but not a GGUF file; expected a model directory, a .gguf file or an org/name id from the HF cache"
        );
    }
    let parts: Vec<&str> = model.split('/').collect();
    let is_id = parts.len() == 2 && parts.iter().all(|p| !p.is_empty() && !p.starts_with('.'));
    if !is_id {
        bail!("model directory {model} does not exist");
    }
    let Some(cache) = cache else {
        bail!("model {model} is not a directory, and no HF cache folder is known (set HF_HOME or HF_HUB_CACHE)");
    };
    let repo = cache.join(format!("models--{}--{}", parts[0], parts[1]));
    let snapshots = repo.join("snapshots");
    if !snapshots.is_dir() {
        let here = std::env::current_dir().map(|d| d.display().to_string()).unwrap_or_else(|_| ".".into());
        bail!(
            "model {model} is neither a folder (from {here}) nor in the HF cache at {}: a local model needs its \
             path (inside a config file or plan, from the file's folder); a Hub model is downloaded first \
             (`huggingface-cli download {model}`)",
            cache.display()
        );
    }
    if let Ok(revision) = std::fs::read_to_string(repo.join("refs").join("main")) {
        let dir = snapshots.join(revision.trim());
        if dir.is_dir() {
            return Ok(dir);
        }
    }
    let newest = std::fs::read_dir(&snapshots)?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .max_by_key(|e| e.metadata().and_then(|m| m.modified()).ok());
    match newest {
        Some(entry) => Ok(entry.path()),
        None => bail!("the HF cache entry {} has no snapshots", repo.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_snapshot_through_refs_main() {
        let cache = tempfile::tempdir().unwrap();
        let repo = cache.path().join("models--acme--tiny-clip");
        std::fs::create_dir_all(repo.join("snapshots").join("abc123")).unwrap();
        std::fs::create_dir_all(repo.join("snapshots").join("old999")).unwrap();
        std::fs::create_dir_all(repo.join("refs")).unwrap();
        std::fs::write(repo.join("refs").join("main"), "abc123\n").unwrap();
        let root = Some(cache.path().to_path_buf());
        let dir = resolve_model_in("acme/tiny-clip", root.clone()).unwrap();
        assert_eq!(dir, repo.join("snapshots").join("abc123"));
        let err = resolve_model_in("acme/absent", root).unwrap_err().to_string();
        assert!(
            err.contains("nor in the HF cache at") && err.contains("huggingface-cli download acme/absent"),
            "{err}"
        );
    }

    #[test]
    fn missing_directory_is_named() {
        let err = resolve_model("/no/such/model/dir").unwrap_err().to_string();
        assert!(err.contains("/no/such/model/dir"), "{err}");
    }
}
