//! Finding and loading the ONNX Runtime shared library, once per process.
//!
//! The library is not linked at build time (ort's `load-dynamic`), so the same
//! binary runs the CPU wheel on a laptop and the GPU wheel on the cluster.
//! Search order: `ORT_DYLIB_PATH`; next to the binary (and `../lib`); a
//! project `.venv` above the binary or the working directory; finally the
//! Python `onnxruntime`/`onnxruntime-gpu` package of `python3`.

use std::{
    path::{Path, PathBuf},
    process::Command,
    sync::OnceLock,
};

use ort::environment::Environment;

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error(
        "ONNX Runtime library not found (searched: {searched}). Install it with `make setup` \
         (pip install onnxruntime into .venv), `pip install onnxruntime` (CPU) or \
         `pip install onnxruntime-gpu` (CUDA/TensorRT), or set ORT_DYLIB_PATH to \
         .../onnxruntime/capi/libonnxruntime.so.<version>"
    )]
    NotFound { searched: String },
    #[error("could not load ONNX Runtime from {path}: {reason}")]
    Load { path: PathBuf, reason: String },
}

/// The process-wide ONNX Runtime environment: one per process, shared by
/// every session of every function.
pub struct OrtRuntime {
    pub library: PathBuf,
    pub environment: Environment,
}

static RUNTIME: OnceLock<Result<OrtRuntime, String>> = OnceLock::new();

impl OrtRuntime {
    /// Loads the library on first use; later calls return the same runtime.
    pub fn get() -> Result<&'static OrtRuntime, RuntimeError> {
        let result = RUNTIME.get_or_init(|| Self::load().map_err(|e| e.to_string()));
        result.as_ref().map_err(|reason| RuntimeError::Load {
            path: PathBuf::from(std::env::var_os("ORT_DYLIB_PATH").unwrap_or_default()),
            reason: reason.clone(),
        })
    }

    fn load() -> Result<OrtRuntime, RuntimeError> {
        let library = find_library()?;
        let load_error = |reason: String| RuntimeError::Load {
            path: library.clone(),
            reason,
        };
        let environment = ort::init_from(&library)
            .map_err(|e| load_error(e.to_string()))?
            .with_name("nuclio-ort")
            .with_telemetry(false)
            .build()
            .map_err(|e| load_error(e.to_string()))?;
        Ok(OrtRuntime {
            library,
            environment,
        })
    }
}

/// Returns the first ONNX Runtime library found, in the documented order.
pub fn find_library() -> Result<PathBuf, RuntimeError> {
    let mut searched = Vec::new();
    if let Some(path) = std::env::var_os("ORT_DYLIB_PATH").filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        if let Some(found) = library_in(&path) {
            return Ok(found);
        }
        // An explicit setting that points nowhere is an error, not a hint to keep looking.
        return Err(RuntimeError::NotFound {
            searched: format!("ORT_DYLIB_PATH={}", path.display()),
        });
    }
    let exe_dir = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(Path::to_path_buf));
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(dir) = &exe_dir {
        candidates.push(dir.clone());
        candidates.push(dir.join("../lib"));
        candidates.extend(dir.ancestors().map(|a| a.join(".venv")));
    }
    if let Ok(cwd) = std::env::current_dir() {
        candidates.push(cwd.join(".venv"));
    }
    for candidate in candidates {
        let found = if candidate.ends_with(".venv") {
            venv_library(&candidate)
        } else {
            library_in(&candidate)
        };
        if let Some(found) = found {
            return Ok(found);
        }
        searched.push(candidate.display().to_string());
    }
    if let Some(found) = python_package_library() {
        return Ok(found);
    }
    searched.push("python3 -c 'import onnxruntime'".into());
    Err(RuntimeError::NotFound {
        searched: searched.join(", "),
    })
}

/// `path` itself if it is a file, else `libonnxruntime.so*` inside it.
fn library_in(path: &Path) -> Option<PathBuf> {
    if path.is_file() {
        return Some(path.to_path_buf());
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir(path)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("libonnxruntime.so") || n == "libonnxruntime.dylib")
        })
        .collect();
    // Prefer the plain name (usually a symlink), then the longest versioned one.
    found.sort_by_key(|p| std::cmp::Reverse(p.to_string_lossy().len()));
    found
        .iter()
        .find(|p| p.file_name().is_some_and(|n| n == "libonnxruntime.so"))
        .or(found.first())
        .cloned()
}

fn venv_library(venv: &Path) -> Option<PathBuf> {
    let lib = std::fs::read_dir(venv.join("lib")).ok()?;
    lib.filter_map(|e| e.ok())
        .map(|e| e.path().join("site-packages/onnxruntime/capi"))
        .find_map(|capi| library_in(&capi))
}

fn python_package_library() -> Option<PathBuf> {
    let output = Command::new("python3")
        .args([
            "-c",
            "import onnxruntime, os; print(os.path.join(os.path.dirname(onnxruntime.__file__), 'capi'))",
        ])
        .output()
        .ok()?;
    if !output.status.success() {
        return None;
    }
    let dir = String::from_utf8(output.stdout).ok()?;
    library_in(Path::new(dir.trim()))
}
