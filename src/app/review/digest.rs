//! What the sheet was made from, identified by content: the sha256 of the rules file and of
//! every template in the templates folder, and one sha256 over them all — that of the lines
//! `sha256sum` prints for the files in this order — so a person can check with
//! `LC_ALL=C sha256sum clinic.step templates/*.toml | sha256sum` that the files in use are the
//! ones the signed sheet shows.

use std::io::Read;
use std::path::Path;

use ring::digest::{Context, SHA256};

use crate::review::Digest;
use crate::source::SourceFile;
use crate::template::TemplateStore;

/// The digest of the rules `file` (as read, so exactly the text checked) and of the templates
/// in `store`'s folder, in byte order of their names (as `LC_ALL=C` sorts a glob).
pub fn of(file: &SourceFile, store: &TemplateStore) -> std::io::Result<Digest> {
    let rules_dir = file.path().parent().unwrap_or(Path::new(""));
    let rules_name = file_name(file.path());
    let mut files = vec![(rules_name.clone(), hex(&sha256_of(file.text().as_bytes())))];
    let mut templates = store.available();
    templates.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    // The folder as the command in the note names it: relative to the rules when inside it.
    let folder = store
        .dir()
        .strip_prefix(rules_dir)
        .unwrap_or(store.dir())
        .to_path_buf();
    for name in templates {
        let path = store.dir().join(format!("{name}.toml"));
        let shown = folder.join(format!("{name}.toml")).display().to_string();
        files.push((shown, hex(&sha256_file(&path)?)));
    }
    let mut all = Context::new(&SHA256);
    for (name, sum) in &files {
        all.update(format!("{sum}  {name}\n").as_bytes());
    }
    let mut command = format!("LC_ALL=C sha256sum {}", shell_word(&rules_name));
    if files.len() > 1 {
        let folder = folder.display().to_string();
        if folder.is_empty() {
            command.push_str(" *.toml");
        } else {
            command.push_str(&format!(" {}/*.toml", shell_word(&folder)));
        }
    }
    command.push_str(" | sha256sum");
    Ok(Digest {
        combined: hex(all.finish().as_ref()),
        files,
        command,
    })
}

fn file_name(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

/// `word` as one shell word: as is when it is plain, else in single quotes.
fn shell_word(word: &str) -> String {
    let plain = |c: char| c.is_alphanumeric() || "._-/".contains(c);
    if !word.is_empty() && word.chars().all(plain) {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

fn sha256_of(bytes: &[u8]) -> Vec<u8> {
    ring::digest::digest(&SHA256, bytes).as_ref().to_vec()
}

/// A file's sha256, read in pieces: a large file is not held in memory.
fn sha256_file(path: &Path) -> std::io::Result<Vec<u8>> {
    let mut file = std::fs::File::open(path)?;
    let mut context = Context::new(&SHA256);
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let read = file.read(&mut buffer)?;
        if read == 0 {
            break;
        }
        context.update(&buffer[..read]);
    }
    Ok(context.finish().as_ref().to_vec())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_digest_is_that_of_sha256sums_lines() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("templates")).unwrap();
        std::fs::write(dir.path().join("templates/b.toml"), "text = \"b\"\n").unwrap();
        std::fs::write(dir.path().join("templates/a.toml"), "text = \"a\"\n").unwrap();
        let rules = dir.path().join("clinic.step");
        std::fs::write(&rules, "stages a\n").unwrap();
        let file = SourceFile::read(&rules).unwrap();
        let digest = of(&file, &TemplateStore::beside(&rules)).unwrap();
        let names: Vec<&str> = digest.files.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            ["clinic.step", "templates/a.toml", "templates/b.toml"]
        );
        // `printf 'stages a\n' | sha256sum`
        assert_eq!(
            digest.files[0].1,
            "f5640a9dc356a84864464e247d0b73c8205a1983eabfd51d784d96703791e5fd"
        );
        let lines: String = digest
            .files
            .iter()
            .map(|(name, sum)| format!("{sum}  {name}\n"))
            .collect();
        assert_eq!(digest.combined, hex(&sha256_of(lines.as_bytes())));
        assert_eq!(
            digest.command,
            "LC_ALL=C sha256sum clinic.step templates/*.toml | sha256sum"
        );
        // A changed template changes the digest.
        std::fs::write(dir.path().join("templates/b.toml"), "text = \"c\"\n").unwrap();
        let again = of(&file, &TemplateStore::beside(&rules)).unwrap();
        assert_ne!(again.combined, digest.combined);
    }
}
