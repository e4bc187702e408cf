//! Naming and opening inputs: files, directories, gzip files and stdin.

use std::fmt;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use flate2::read::MultiGzDecoder;

use crate::error::InputError;

/// One input to read from.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum InputSource {
    /// Standard input (`-` on the command line).
    Stdin,
    /// A file; gzip files are recognised by their content, not their name.
    File(PathBuf),
}

impl fmt::Display for InputSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InputSource::Stdin => f.write_str("<stdin>"),
            InputSource::File(p) => write!(f, "{}", p.display()),
        }
    }
}

const BUFFER_BYTES: usize = 1 << 20;

impl InputSource {
    /// Opens the input for reading, decompressing gzip transparently.
    pub fn open(&self) -> Result<Box<dyn BufRead + Send>, InputError> {
        match self {
            InputSource::Stdin => gunzip_if_needed(Box::new(io::stdin()), Path::new("<stdin>")),
            InputSource::File(path) => {
                let file = File::open(path).map_err(|source| InputError::Open {
                    path: path.clone(),
                    source,
                })?;
                gunzip_if_needed(Box::new(file), path)
            }
        }
    }

    /// Size in bytes where known (files), for progress reporting.
    pub fn size_hint(&self) -> Option<u64> {
        match self {
            InputSource::Stdin => None,
            InputSource::File(p) => std::fs::metadata(p).ok().map(|m| m.len()),
        }
    }
}

fn gunzip_if_needed(
    inner: Box<dyn Read + Send>,
    path: &Path,
) -> Result<Box<dyn BufRead + Send>, InputError> {
    let mut reader = BufReader::with_capacity(BUFFER_BYTES, inner);
    let head = reader.fill_buf().map_err(|source| InputError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    if head.starts_with(&[0x1f, 0x8b]) {
        Ok(Box::new(BufReader::with_capacity(
            BUFFER_BYTES,
            MultiGzDecoder::new(reader),
        )))
    } else {
        Ok(Box::new(reader))
    }
}

/// Expands command-line paths into inputs: `-` is stdin, a directory stands for every file
/// under it (hidden ones excluded, in name order, so that the apiserver's rotated
/// `audit-<timestamp>.log` files come before the current `audit.log`).
pub fn expand_paths<S: AsRef<str>>(paths: &[S]) -> Result<Vec<InputSource>, InputError> {
    let mut inputs = Vec::new();
    for p in paths {
        let p = p.as_ref();
        if p == "-" {
            inputs.push(InputSource::Stdin);
            continue;
        }
        let path = PathBuf::from(p);
        let meta = std::fs::metadata(&path).map_err(|source| InputError::Open {
            path: path.clone(),
            source,
        })?;
        if meta.is_dir() {
            let before = inputs.len();
            walk_dir(&path, &mut inputs)?;
            if inputs.len() == before {
                return Err(InputError::Empty(path));
            }
        } else {
            inputs.push(InputSource::File(path));
        }
    }
    Ok(inputs)
}

fn walk_dir(dir: &Path, out: &mut Vec<InputSource>) -> Result<(), InputError> {
    let entries = std::fs::read_dir(dir).map_err(|source| InputError::Open {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut paths: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            !p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with('.'))
        })
        .collect();
    paths.sort();
    for p in paths {
        if p.is_dir() {
            walk_dir(&p, out)?;
        } else if p.is_file() {
            out.push(InputSource::File(p));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn directories_expand_to_their_files_in_name_order_without_hidden_ones() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["audit.log", "audit-2024-01-01T00-00-00.000.log", ".hidden"] {
            std::fs::write(dir.path().join(name), "{}\n").unwrap();
        }
        std::fs::create_dir(dir.path().join("old")).unwrap();
        std::fs::write(dir.path().join("old/a.log"), "{}\n").unwrap();
        let inputs = expand_paths(&[dir.path().to_str().unwrap()]).unwrap();
        let names: Vec<String> = inputs
            .iter()
            .map(|i| match i {
                InputSource::File(p) => p.strip_prefix(dir.path()).unwrap().display().to_string(),
                InputSource::Stdin => "-".into(),
            })
            .collect();
        assert_eq!(
            names,
            [
                "audit-2024-01-01T00-00-00.000.log",
                "audit.log",
                "old/a.log"
            ]
        );
    }

    #[test]
    fn missing_path_is_an_error_that_names_it() {
        let err = expand_paths(&["/no/such/audit.log"]).unwrap_err();
        assert!(err.to_string().contains("/no/such/audit.log"), "{err}");
    }

    #[test]
    fn gzip_is_recognised_by_content() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log.1");
        let mut gz = flate2::write::GzEncoder::new(
            File::create(&path).unwrap(),
            flate2::Compression::fast(),
        );
        gz.write_all(b"{\"kind\":\"Event\"}\n").unwrap();
        gz.finish().unwrap();
        let mut text = String::new();
        InputSource::File(path)
            .open()
            .unwrap()
            .read_to_string(&mut text)
            .unwrap();
        assert_eq!(text, "{\"kind\":\"Event\"}\n");
    }
}
